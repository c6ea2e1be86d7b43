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
from torchvision.transforms import v2

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


def frame_transform(train: bool, image_size: int) -> v2.Compose:
    """uint8 in, uint8 out. Train: RandomResizedCrop + horizontal flip; test: plain resize."""
    if train:
        return v2.Compose([v2.RandomResizedCrop(image_size, antialias=True), v2.RandomHorizontalFlip()])
    return v2.Resize((image_size, image_size), antialias=True)


def frames_to_model_input(frames: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, T, H, W) -> float, scaled to [0, 1] and ImageNet-normalised, on frames' device."""
    shape = (1, 3) + (1,) * (frames.dim() - 2)
    mean = torch.tensor(IMAGENET_MEAN, device=frames.device).view(shape)
    std = torch.tensor(IMAGENET_STD, device=frames.device).view(shape)
    return (frames.float() / 255.0 - mean) / std
