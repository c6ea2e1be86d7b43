"""Frame decoding and the reference visual transforms.

One clip's frames are stacked to (T, 3, H, W) uint8 before the transform. At training the random
crop/flip is drawn once per clip and applied to all its frames alike (--frame_augment clip, this
project's choice), or drawn for each frame on its own (--frame_augment frame: the reference loaders
transform every frame separately). Frames stay uint8 through the data loader (4x less to copy);
`frames_to_model_input` scales and normalises them on the model's device.
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
    horizontal flip with p = 0.5, drawn once for the clip, or for each frame with `per_frame` (crop,
    then flip, frame after frame); test: plain resize. Written out rather than composed from
    transforms.v2 because the v2 dispatch costs as much as the resize itself."""

    def __init__(self, train: bool, image_size: int, per_frame: bool = False):
        self.train, self.size, self.per_frame = train, [image_size, image_size], per_frame

    def for_evaluation(self) -> "ClipTransform":
        return ClipTransform(False, self.size[0], self.per_frame)

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        if not self.train:
            return TF.resize(frames, self.size, antialias=True)
        if self.per_frame:
            return torch.stack([self._crop_and_flip(frame) for frame in frames])
        return self._crop_and_flip(frames)

    def _crop_and_flip(self, frames: torch.Tensor) -> torch.Tensor:
        top, left, h, w = RandomResizedCrop.get_params(frames, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3))
        out = TF.resize(frames[..., top:top + h, left:left + w], self.size, antialias=True)
        return out.flip(-1) if torch.rand(1).item() < 0.5 else out


FRAME_AUGMENTS = ("frame", "clip")


def frame_transform(train: bool, image_size: int, augment: str = "clip") -> ClipTransform:
    """augment: "clip" (one crop/flip per clip) or "frame" (one per frame)."""
    if augment not in FRAME_AUGMENTS:
        raise ValueError(f"frame augmentation {augment!r} is not one of {', '.join(FRAME_AUGMENTS)}")
    return ClipTransform(train, image_size, per_frame=augment == "frame")


def frames_to_model_input(frames: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, T, H, W) -> float, scaled to [0, 1] and ImageNet-normalised, on frames' device."""
    shape = (1, 3) + (1,) * (frames.dim() - 2)
    mean = torch.tensor(IMAGENET_MEAN, device=frames.device).view(shape)
    std = torch.tensor(IMAGENET_STD, device=frames.device).view(shape)
    return (frames.float() / 255.0 - mean) / std
