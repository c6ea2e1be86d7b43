"""Video -> jpg frames at a chosen rate (OpenCV), written atomically per clip; video -> wav (PyAV)."""
import shutil
from pathlib import Path

import cv2


def native_frame_rate(video: Path) -> float:
    """The frame rate the video reports (0 when it reports none)."""
    capture = cv2.VideoCapture(str(video))
    try:
        if not capture.isOpened():
            raise RuntimeError("cannot open the video")
        return capture.get(cv2.CAP_PROP_FPS)
    finally:
        capture.release()


def decoded_frames(video: Path):
    """(index, BGR frame) for every frame of `video`, in order."""
    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        raise RuntimeError("cannot open the video")
    try:
        index = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            yield index, frame
            index += 1
    finally:
        capture.release()


def iter_frames(video: Path, fps: float = 1.0):
    """BGR frames of `video`, the first of each 1/fps-second slot."""
    native_fps = native_frame_rate(video) or 30.0
    last_slot = -1
    for seen, frame in decoded_frames(video):
        slot = int(seen * fps / native_fps)
        if slot > last_slot:
            last_slot = slot
            yield frame


def write_folder_atomically(out_dir: Path, fill) -> int:
    """fill(partial_dir) -> number of files written; the folder appears only when complete,
    so an interrupted run leaves nothing half-done."""
    partial = out_dir.parent / f".{out_dir.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        written = fill(partial)
        partial.rename(out_dir)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return written


def extract_frames(video: Path, out_dir: Path, fps: float = 1.0, quality: int = 95) -> int:
    """Write frames of `video` as out_dir/00001.jpg, ... (the first frame of each 1/fps-second slot)."""
    def fill(partial: Path) -> int:
        written = 0
        for written, frame in enumerate(iter_frames(video, fps), start=1):
            cv2.imwrite(str(partial / f"{written:05d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if written == 0:
            raise RuntimeError("no frame could be decoded")
        return written
    return write_folder_atomically(out_dir, fill)


def decode_audio(video: Path, sample_rate: int = 16000):
    """The video's first audio track (e.g. AAC in mp4) decoded with PyAV, downmixed to mono and resampled:
    float32 samples."""
    import av  # optional dependency, needed only to prepare audio from videos
    import numpy as np

    with av.open(str(video)) as container:
        if not container.streams.audio:
            raise RuntimeError("no audio track")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks = [out.to_ndarray().reshape(-1)
                  for frame in container.decode(audio=0) for out in resampler.resample(frame)]
        chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    if not chunks:
        raise RuntimeError("no audio sample could be decoded")
    return np.concatenate(chunks)


def write_wav(wave, wav_path: Path, sample_rate: int = 16000) -> None:
    """A 16-bit wav, written atomically."""
    import soundfile

    partial = wav_path.parent / f".{wav_path.name}.partial.wav"
    soundfile.write(partial, wave, sample_rate, subtype="PCM_16")
    partial.rename(wav_path)


def extract_audio(video: Path, wav_path: Path, sample_rate: int = 16000) -> float:
    """Decode the video's first audio track, downmix to mono, resample, and write a 16-bit wav
    atomically. Returns the duration in seconds."""
    wave = decode_audio(video, sample_rate)
    write_wav(wave, wav_path, sample_rate)
    return len(wave) / sample_rate
