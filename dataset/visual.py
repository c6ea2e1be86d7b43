"""Frame decoding and the reference visual transforms.

One clip's frames are stacked to (T, 3, H, W) uint8 before the transform, so a
random crop/flip is drawn once per clip and applied to all its frames alike.
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
    """Train: RandomResizedCrop + horizontal flip; test: plain resize. Then ImageNet normalisation."""
    if train:
        geometry = [v2.RandomResizedCrop(image_size, antialias=True), v2.RandomHorizontalFlip()]
    else:
        geometry = [v2.Resize((image_size, image_size), antialias=True)]
    return v2.Compose(geometry + [v2.ToDtype(torch.float32, scale=True),
                                  v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
