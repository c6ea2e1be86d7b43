"""One UCF-101 video -> the layout dataset/ucf101.py reads (scripts/prepare_ucf101.py runs it over a folder):

OUT/rgb/<stem>/frame_00001.jpg, ...      the first frame of each 1/fps-second slot (as dataset/video.iter_frames)
OUT/flow/u/<stem>/frame000001.jpg, ...   TV-L1 flow between consecutive frames at the video's own rate (one
OUT/flow/v/<stem>/frame000001.jpg, ...   fewer than its frames), clipped to +-bound px, mapped to 0..255
OUT/prepared/<stem>.done                 written last: its settings and counts; a video without it is redone

TV-L1 is OpenCV contrib's cv2.optflow.DualTVL1OpticalFlow_create() with its defaults (tau 0.25, lambda 0.15,
theta 0.3, 5 scales, 5 warps, epsilon 0.01, 30 inner / 10 outer iterations, median filter 5) on grayscale
frames, as yjxiong/dense_flow; the encoding round(255 * (d + bound) / (2 bound)) is gpu_flow's and
dense_flow's (bound 20), so 128 is about no motion and 255 - x the negated displacement.
"""
import json
import shutil
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from .errors import DataError
from .video import decoded_frames, native_frame_rate

INSTALL = ("pip uninstall -y opencv-python-headless && pip install opencv-contrib-python-headless==5.0.0.93 "
           "(as requirements.txt)")
_tvl1 = None  # one solver per process


def tvl1_solver():
    """cv2.optflow's TV-L1 solver, or one DataError line saying which package provides it."""
    global _tvl1
    if _tvl1 is None:
        import cv2
        create = getattr(getattr(cv2, "optflow", None), "DualTVL1OpticalFlow_create", None)
        if create is None:
            raise DataError(f"cv2.optflow is missing from OpenCV {cv2.__version__}: TV-L1 flow needs OpenCV's contrib "
                            f"build. Install it: {INSTALL}")
        _tvl1 = create()
    return _tvl1


def one_thread() -> None:
    """A worker process's OpenCV runs on one thread: the processes are the parallelism."""
    import cv2
    cv2.setNumThreads(1)


def encode_flow(flow: np.ndarray, bound: float):
    """(H, W, 2) float displacements -> (u, v) uint8 images, +-bound px -> 0..255."""
    scaled = np.round(255.0 * (np.clip(flow, -bound, bound) + bound) / (2.0 * bound))
    return scaled[..., 0].astype(np.uint8), scaled[..., 1].astype(np.uint8)


def outputs(out: Path, stem: str) -> Dict[str, Path]:
    return {"rgb": out / "rgb" / stem, "u": out / "flow" / "u" / stem, "v": out / "flow" / "v" / stem}


def marker_path(out: Path, stem: str) -> Path:
    return out / "prepared" / f"{stem}.done"


def settings(fps: float, bound: float) -> dict:
    return {"fps": fps, "flow_bound": bound, "flow": "tvl1"}


def done_settings(out: Path, stem: str) -> Optional[dict]:
    """The settings a finished video was prepared with (None when it is not finished)."""
    marker = marker_path(out, stem)
    if not marker.is_file() or not all(p.is_dir() for p in outputs(out, stem).values()):
        return None
    try:
        recorded = json.loads(marker.read_text())
    except ValueError:
        return None
    return {k: recorded.get(k) for k in settings(0, 0)}


def prepare_video(video: Path, out: Path, fps: float = 1.0, bound: float = 20.0, quality: int = 95) -> dict:
    """Write one video's RGB frames and flow (module docstring); whatever an earlier, unfinished attempt left
    is replaced. The folders appear only complete (written as hidden .partial folders, then renamed)."""
    import cv2

    solver = tvl1_solver()
    finals = outputs(out, video.stem)
    partials = {k: p.parent / f".{p.name}.partial" for k, p in finals.items()}
    marker = marker_path(out, video.stem)
    marker.unlink(missing_ok=True)
    for folder in (*finals.values(), *partials.values()):
        shutil.rmtree(folder, ignore_errors=True)
    for folder in partials.values():
        folder.mkdir(parents=True)
    jpeg = [cv2.IMWRITE_JPEG_QUALITY, quality]
    try:
        native_fps = native_frame_rate(video) or 30.0
        last_slot, n_rgb, n_flow, previous = -1, 0, 0, None
        for index, frame in decoded_frames(video):
            slot = int(index * fps / native_fps)  # the first frame of each 1/fps-second slot
            if slot > last_slot:
                last_slot, n_rgb = slot, n_rgb + 1
                cv2.imwrite(str(partials["rgb"] / f"frame_{n_rgb:05d}.jpg"), frame, jpeg)
            gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
            if previous is not None:
                n_flow += 1
                u, v = encode_flow(solver.calc(previous, gray, None), bound)
                cv2.imwrite(str(partials["u"] / f"frame{n_flow:06d}.jpg"), u, jpeg)
                cv2.imwrite(str(partials["v"] / f"frame{n_flow:06d}.jpg"), v, jpeg)
            previous = gray
        if n_flow == 0:
            raise RuntimeError("no frame could be decoded" if n_rgb == 0 else "a single frame: no flow")
        for key, folder in finals.items():
            partials[key].rename(folder)
        marker.parent.mkdir(parents=True, exist_ok=True)
        record = {**settings(fps, bound), "rgb_frames": n_rgb, "flow_frames": n_flow, "video": str(video)}
        marker.write_text(json.dumps(record) + "\n")
        return record
    finally:
        for folder in partials.values():
            shutil.rmtree(folder, ignore_errors=True)
