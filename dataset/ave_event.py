"""AVE's labelled event segment as PMR prepares it (data/AVE/video_preprocessing.py, which writes the
Audio-1004-SE and Image-01-FPS-SE folders its AVEDataset reads), for scripts/prepare_ave.py --segment event.

- audio (extractWav_SE :199-228): the 16 kHz samples [16000 * start, 16000 * end). The wav written
  holds just them; the reader's Spectrogram(10 s) then tiles (a wave tiled any number of times and cut
  to 10 s is the same as their tile x10, again x10 if short, cut), clips, and makes the 512 / 353
  spectrogram, so the prepared wav gives their 257 x 1,004 input without an AVE-only reader.
- frames (video2frame_update_SE :78-121 at 1 frame a second): with fps = int(the video's frame rate),
  the first frame of each second s (video frame s * fps) with start <= s <= end (both included); when
  fewer than 10 are kept, extra frames at random video-frame indices in [start * fps, end * fps) that are
  not kept yet, until there are 10. Files are named by video frame index (00090.jpg), as theirs, so the
  sorted list is in time order. Their draw is unseeded; ours is seeded by the video id.

Where their code would fail, ours keeps going: a zero-length event (one train row is `0&0`) takes the
one second from its start for the audio and the extra frames (their audio slice would be empty and
np.random.randint(0, 0) raises); extras past the video's last frame are not drawn.
"""
import zlib
from pathlib import Path
from typing import List, Tuple

import cv2
import numpy as np

from .video import decode_audio, decoded_frames, native_frame_rate, write_folder_atomically, write_wav

SAMPLE_RATE = 16000
MIN_FRAMES = 10


def event_stop(start: int, end: int) -> int:
    """The (excluded) second the event's audio and extra frames stop at: `end`, or start + 1 for a zero-length event."""
    return max(end, start + 1)


def event_audio(wave: np.ndarray, start: int, end: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """samples[sr * start : sr * end] (their slice)."""
    segment = wave[sample_rate * start:sample_rate * event_stop(start, end)]
    if len(segment) == 0:
        raise RuntimeError(f"the event {start}-{end} s starts after the audio ends ({len(wave) / sample_rate:.1f} s)")
    return segment


def event_frame_indices(n_frames: int, fps: int, start: int, end: int, video_id: str,
                        min_frames: int = MIN_FRAMES) -> Tuple[List[int], List[int]]:
    """(kept, extra) video-frame indices of a video of n_frames frames (see the module docstring)."""
    kept = [c for c in range(0, n_frames, fps) if start <= c // fps <= end]
    need = min_frames - len(kept)
    if need <= 0:
        return kept, []
    taken = set(kept)
    candidates = [c for c in range(start * fps, min(event_stop(start, end) * fps, n_frames)) if c not in taken]
    rng = np.random.default_rng(zlib.crc32(video_id.encode()))  # reproducible per video
    extra = rng.choice(candidates, size=min(need, len(candidates)), replace=False) if candidates else []
    return kept, sorted(int(c) for c in extra)


def video_frame_rate(video: Path) -> int:
    fps = int(native_frame_rate(video))  # their int(): 29.97 fps counts seconds of 29 frames
    if fps < 1:
        raise RuntimeError("the video reports no frame rate")
    return fps


def write_frames(video: Path, out: Path, wanted) -> int:
    """Decode `video` in order and write the frames whose index `wanted(index)` accepts as out/<index>.jpg;
    returns the number of frames decoded."""
    count = 0
    for index, frame in decoded_frames(video):
        if wanted(index):
            cv2.imwrite(str(out / f"{index:05d}.jpg"), frame)  # OpenCV's default quality, as their imencode
        count = index + 1
    return count


def extract_event_frames(video: Path, out_dir: Path, start: int, end: int, video_id: str) -> int:
    """Write PMR's event frames of `video` to out_dir (atomically); returns how many."""
    fps = video_frame_rate(video)

    def fill(partial: Path) -> int:
        n_frames = write_frames(video, partial, lambda c: c % fps == 0 and start <= c // fps <= end)
        kept, extra = event_frame_indices(n_frames, fps, start, end, video_id)
        if extra:  # a second, sequential pass: exact frames where seeking may not be
            wanted = set(extra)
            write_frames(video, partial, wanted.__contains__)
        if not kept and not extra:
            raise RuntimeError(f"the event {start}-{end} s starts after the video's {n_frames} frames")
        return len(kept) + len(extra)
    return write_folder_atomically(out_dir, fill)


def prepare_event_clip(video: Path, frames: Path, wav: Path, start: int, end: int, video_id: str) -> None:
    """Event frames and event audio of one video; what exists already is kept (each appears only whole)."""
    if not video.is_file():
        raise RuntimeError(f"video not found: {video}")
    if not frames.is_dir():
        extract_event_frames(video, frames, start, end, video_id)
    if not wav.is_file():
        write_wav(event_audio(decode_audio(video, SAMPLE_RATE), start, end), wav, SAMPLE_RATE)
