"""Frame decoding and the reference visual transforms.

One clip's frames are stacked to (T, 3, H, W) uint8 before the transform, so a
random crop/flip is drawn once per clip and applied to all its frames alike. Frames stay
uint8 through the data loader (4x less to copy); `frames_to_model_input` scales and
normalises them on the model's device.
"""
from pathlib import Path
from typing import List, Sequence

import torch
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms import RandomResizedCrop
from torchvision.transforms.v2 import functional as TF

from .errors import DataError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def pick_evenly(n_available: int, n_wanted: int) -> List[int]:
    """n_wanted indices spread over the clip: the centres of n_wanted equal parts (repeats if too few)."""
    return [min(n_available - 1, int((i + 0.5) * n_available / n_wanted)) for i in range(n_wanted)]


def list_frames(folder: Path) -> List[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def read_frame(path: Path) -> torch.Tensor:
    """(3, H, W) uint8; a clear DataError for unreadable images."""
    try:
        return decode_image(str(path), mode=ImageReadMode.RGB)
    except Exception as err:  # torchvision raises RuntimeError for truncated / non-image files
        raise DataError(f"cannot decode image {path}: {err}. Re-extract the frames of this clip") from None


def read_frames(paths: Sequence[Path]) -> torch.Tensor:
    """(T, 3, H, W) uint8; frames of one clip must share a size."""
    frames = [read_frame(p) for p in paths]
    sizes = {tuple(f.shape) for f in frames}
    if len(sizes) > 1:
        raise DataError(f"frames of {paths[0].parent} differ in size {sorted(sizes)}. Re-extract the frames of this clip")
    return torch.stack(frames)


class ClipTransform:
    """uint8 (T, 3, H, W) in and out. Train: RandomResizedCrop (scale 0.08-1, ratio 3/4-4/3) and a
    horizontal flip with p = 0.5, drawn once for the clip; test: plain resize. Written out rather
    than composed from transforms.v2 because the v2 dispatch costs as much as the resize itself."""

    def __init__(self, train: bool, image_size: int):
        self.train, self.size = train, [image_size, image_size]

    def for_evaluation(self) -> "ClipTransform":
        return ClipTransform(False, self.size[0])

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        if not self.train:
            return TF.resize(frames, self.size, antialias=True)
        top, left, h, w = RandomResizedCrop.get_params(frames, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3))
        out = TF.resize(frames[..., top:top + h, left:left + w], self.size, antialias=True)
        return out.flip(-1) if torch.rand(1).item() < 0.5 else out


def frame_transform(train: bool, image_size: int) -> ClipTransform:
    return ClipTransform(train, image_size)


def frames_to_model_input(frames: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, T, H, W) -> float, scaled to [0, 1] and ImageNet-normalised, on frames' device."""
    shape = (1, 3) + (1,) * (frames.dim() - 2)
    mean = torch.tensor(IMAGENET_MEAN, device=frames.device).view(shape)
    std = torch.tensor(IMAGENET_STD, device=frames.device).view(shape)
    return (frames.float() / 255.0 - mean) / std
