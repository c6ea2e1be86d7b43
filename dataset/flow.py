"""Optical flow stored as grayscale JPEG pairs (u = horizontal, v = vertical displacement), the encoding of
the public TV-L1 sets and of scripts/prepare_ucf101.py: displacements clipped to +-bound px (20) and mapped
linearly to 0..255, so 255 - x is the negated displacement.

A clip's flow is (T, 2, H, W) uint8 through the data loader; `flow_to_model_input` scales it to [0, 1] on the
model's device, as the MMCosine release's and BalanceBenchmark's ToTensor without normalisation.
"""
from pathlib import Path
from typing import Sequence

import torch
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms import RandomResizedCrop
from torchvision.transforms.v2 import functional as TF

from .errors import DataError


def read_gray(path: Path) -> torch.Tensor:
    """(1, H, W) uint8; a clear DataError for unreadable images."""
    try:
        return decode_image(str(path), mode=ImageReadMode.GRAY)
    except Exception as err:  # torchvision raises RuntimeError for missing, truncated or non-image files
        raise DataError(f"cannot decode flow image {path}: {err}. Re-run scripts/prepare_ucf101.py for this video "
                        "(delete its prepared/<video>.done first)") from None


def read_flow(u_paths: Sequence[Path], v_paths: Sequence[Path]) -> torch.Tensor:
    """(T, 2, H, W) uint8, channel 0 = u, 1 = v; all images of a clip must share a size."""
    images = [read_gray(p) for pair in zip(u_paths, v_paths) for p in pair]
    sizes = {tuple(image.shape) for image in images}
    if len(sizes) > 1:
        raise DataError(f"flow images of {Path(u_paths[0]).parent.name} differ in size {sorted(sizes)}. "
                        "Re-run scripts/prepare_ucf101.py for this video")
    return torch.cat(images).reshape(len(u_paths), 2, *images[0].shape[1:])


class FlowClipTransform:
    """uint8 (T, 2, H, W) in and out. Train: one RandomResizedCrop (scale 0.08-1, ratio 3/4-4/3) and one
    horizontal flip (p = 0.5) for the whole clip, u and v alike; a flip mirrors the motion, so u is negated
    (255 - u). Test: plain resize. (The release crops and flips u and v of each frame independently, and never
    negates u: flow that no longer describes the image it came from; docs/fidelity.md.)"""

    def __init__(self, train: bool, image_size: int):
        self.train, self.size = train, [image_size, image_size]

    def for_evaluation(self) -> "FlowClipTransform":
        return FlowClipTransform(False, self.size[0])

    def __call__(self, flow: torch.Tensor) -> torch.Tensor:
        if not self.train:
            return TF.resize(flow, self.size, antialias=True)
        top, left, h, w = RandomResizedCrop.get_params(flow, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3))
        out = TF.resize(flow[..., top:top + h, left:left + w], self.size, antialias=True)
        if torch.rand(1).item() < 0.5:
            out = out.flip(-1)
            out[:, 0] = 255 - out[:, 0]
        return out


def flow_to_model_input(flow: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 2, T, H, W) -> float in [0, 1], on flow's device."""
    return flow.float() / 255.0
