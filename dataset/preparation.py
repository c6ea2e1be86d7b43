"""What the preparation scripts share: the loop that does each clip's job under a progress bar, skips
finished clips, keeps going past failures and reports them (failed.txt); and the job most of them run,
one video -> frames/<clip>/00001.jpg ... (OpenCV) + audio/<clip>.wav (PyAV, mono 16 kHz)."""
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from tqdm import tqdm

from .video import extract_audio, extract_frames

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".flv")


def prepare_all(jobs: Iterable[Tuple[str, Callable[[], None], Callable[[], bool]]], report_dir: Path,
                desc: str) -> List[str]:
    """jobs: (name, do, done). Runs `do` for every job whose `done()` is false; returns the failures."""
    jobs = list(jobs)
    todo = [job for job in jobs if not job[2]()]
    print(f"{len(jobs)} clips, {len(jobs) - len(todo)} already done")
    failed = []
    for name, do, _ in tqdm(todo, desc=desc, dynamic_ncols=True):
        try:
            do()
        except Exception as err:  # report every failure at the end instead of stopping the batch
            failed.append(f"{name}: {err}")
    report = Path(report_dir) / "failed.txt"
    if failed:
        report.write_text("\n".join(failed) + "\n")
        print(f"{len(failed)} clip(s) failed (listed in {report}):", *failed[:10], sep="\n  ")
    else:
        report.unlink(missing_ok=True)
        print("all clips done")
    return failed


def prepare_video_clip(video: Path, frames: Path, wav: Path, fps: float) -> None:
    """Frames at `fps` and the audio track of one video; what exists already is kept (each appears only whole)."""
    if not video.is_file():
        raise RuntimeError(f"video not found: {video}")
    if not frames.is_dir():
        extract_frames(video, frames, fps)
    if not wav.is_file():
        extract_audio(video, wav)


def find_videos(folder: Path, clip_of: Callable[[str], str] = lambda stem: stem) -> Dict[str, Path]:
    """{clip name: video} for every video file under `folder` (class subfolders included); clip_of maps a
    file's stem to the clip name the lists use (e.g. VGGSound's zero-padded start)."""
    return {clip_of(p.stem): p for p in sorted(Path(folder).rglob("*")) if p.suffix.lower() in VIDEO_SUFFIXES}


def prepare_listed_clips(root: Path, clips: Sequence[str], videos: Dict[str, Path], fps: float,
                         video_dir: Path, folders: Tuple[str, str] = ("frames", "audio"),
                         job: Optional[Callable[[str, Path, Path, Path], None]] = None) -> int:
    """Frames + wav for every listed clip that has a video, in <root>/<folders[0]>/<clip>/ and
    <root>/<folders[1]>/<clip>.wav; job(clip, video, frames folder, wav) does one clip (default: frames at
    `fps` and the whole audio track). The listed clips without a video go to <root>/missing.txt and are
    counted. Exit status: 1 if a clip failed, else 0."""
    frames_root, audio_root = root / folders[0], root / folders[1]
    frames_root.mkdir(parents=True, exist_ok=True)
    audio_root.mkdir(parents=True, exist_ok=True)
    if job is None:
        def job(clip, video, frames, wav):
            prepare_video_clip(video, frames, wav, fps)
    listed = list(dict.fromkeys(clips))
    missing = [clip for clip in listed if clip not in videos]
    report = root / "missing.txt"
    if missing:
        report.write_text("\n".join(missing) + "\n")
        print(f"{len(missing)} of the {len(listed)} listed clips have no video in {video_dir} (listed in {report}); "
              "train with --skip_missing True to leave them out")
    else:
        report.unlink(missing_ok=True)
    jobs = []
    for clip in listed:
        if clip in videos:
            frames, wav = frames_root / clip, audio_root / f"{clip}.wav"
            jobs.append((videos[clip].name, lambda c=clip, f=frames, w=wav: job(c, videos[c], f, w),
                         lambda f=frames, w=wav: f.is_dir() and w.is_file()))
    return 1 if prepare_all(jobs, root, "frames + audio") else 0
