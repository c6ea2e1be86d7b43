"""Face crops for the VoxCeleb setting: detect (MTCNN from facenet-pytorch, optional), align
(rotate so the eyes are level) and crop a square around the face, resized, in one affine warp.

facenet-pytorch ships its MTCNN weights inside the wheel, so nothing is downloaded at run
time. Its metadata pins an old torch, so it is installed without dependencies:
    pip install --no-deps facenet-pytorch==2.6.0
"""
from typing import List, NamedTuple, Optional

import cv2
import numpy as np

INSTALL_HINT = "pip install --no-deps facenet-pytorch==2.6.0"


class Face(NamedTuple):
    box: np.ndarray        # (4,) x1, y1, x2, y2 in pixels
    landmarks: np.ndarray  # (5, 2) x, y: left eye, right eye (as seen in the image), nose, mouth corners
    score: float


class MTCNNDetector:
    """Callable: RGB uint8 (H, W, 3) -> the most confident Face, or None."""

    def __init__(self, device: str = "cpu", min_score: float = 0.9):
        try:
            from facenet_pytorch import MTCNN
        except ImportError:
            raise RuntimeError(f"face detection needs facenet-pytorch: {INSTALL_HINT}") from None
        self.mtcnn = MTCNN(keep_all=True, device=device)
        self.min_score = min_score

    def __call__(self, rgb: np.ndarray) -> Optional[Face]:
        boxes, scores, landmarks = self.mtcnn.detect(rgb, landmarks=True)
        if boxes is None:
            return None
        best = int(np.argmax(scores))
        if scores[best] < self.min_score:
            return None
        return Face(np.asarray(boxes[best], dtype=np.float64), np.asarray(landmarks[best], dtype=np.float64),
                    float(scores[best]))


def alignment_matrix(face: Face, size: int, margin: float = 0.3) -> np.ndarray:
    """2x3 affine map from image pixels to a size x size crop: rotation about the box centre that
    levels the eyes, then scaling so the box's longer side plus `margin` of it fills the crop."""
    left_eye, right_eye = face.landmarks[0], face.landmarks[1]
    dx, dy = right_eye - left_eye
    theta = np.arctan2(dy, dx)
    rotation = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])
    x1, y1, x2, y2 = face.box
    centre = np.array([(x1 + x2) / 2, (y1 + y2) / 2])
    scale = size / (max(x2 - x1, y2 - y1) * (1 + margin))
    linear = scale * rotation
    return np.hstack([linear, (size / 2 - linear @ centre)[:, None]])


def align_crop(image: np.ndarray, face: Face, size: int, margin: float = 0.3) -> np.ndarray:
    return cv2.warpAffine(image, alignment_matrix(face, size, margin), (size, size), flags=cv2.INTER_AREA,
                          borderMode=cv2.BORDER_CONSTANT)


def faces_for_track(detections: List[Optional[Face]]) -> List[Face]:
    """VoxCeleb clips are face tracks: a frame where detection failed takes the nearest earlier
    detection (or, at the start, the first one). Raises if no frame had a face."""
    first = next((f for f in detections if f is not None), None)
    if first is None:
        raise RuntimeError("no face found in any frame")
    filled, last = [], first
    for face in detections:
        last = face if face is not None else last
        filled.append(last)
    return filled
