"""Which RGB frames and flow pairs a UCF-101 item reads: the `--recipe` of main_UCF.py.

Ordinals are 1-based positions (frame_0000{t}.jpg of the 1-fps RGB set, frame{t:06d}.jpg of the flow set);
n is how many the video has. Training draws come from torch's generator, which the dataset seeds per item.

- release (default): the MMCosine release's RDDataset (dataset.py, as bytecode only). RGB: 3 of the first 6
  frames, training t_i = randint(2i+1, 2i+2), testing 1, 3, 5. Flow: 16 pairs, seg = min(n, 1000) // 16,
  training randint(i*seg+1, i*seg+seg), testing i*seg+1, a video of fewer than 16 flow pairs reads pair 1
  throughout; (2, 16, S, S) for the 3-D ResNet18 (models/flow_encoders.Flow3DEncoder).
- release_2d: the release's RDDataset_F1. RGB as release; flow the single pair 3 -> (2, 1, S, S) for the
  2-D ResNet18 (Flow2DEncoder).
- balancebenchmark: BalanceBenchmark's ucf101_dataset.py. RGB as release; flow 3 pairs, seg = n // 3,
  training randint(i*seg+1, i*seg+seg), testing i*seg + max(seg // 2, 1) (the middle of each third);
  (2, 3, S, S) for the 2-D ResNet18.

Where the originals would read a file past the video's end (RGB clips shorter than 6 s, flow shorter than
3 pairs), the ordinal is clamped to the last one: they crash there (docs/fidelity.md).
"""
from dataclasses import dataclass
from typing import Callable, List

import torch

from .errors import DataError

RGB_FRAMES, RGB_SEGMENT = 3, 2  # 3 frames, one of each pair of seconds 1-2, 3-4, 5-6


def clamp(ordinals: List[int], n: int) -> List[int]:
    return [min(t, n) for t in ordinals]


def rgb_ordinals(n: int, train: bool) -> List[int]:
    offsets = torch.randint(0, RGB_SEGMENT, (RGB_FRAMES,)).tolist() if train else [0] * RGB_FRAMES
    return clamp([RGB_SEGMENT * i + 1 + offset for i, offset in enumerate(offsets)], n)


def release_flow(n: int, train: bool) -> List[int]:
    picks = 16
    seg = min(n, 1000) // picks
    if seg == 0:
        return [1] * picks
    offsets = torch.randint(0, seg, (picks,)).tolist() if train else [0] * picks
    return [i * seg + 1 + offset for i, offset in enumerate(offsets)]


def release_2d_flow(n: int, train: bool) -> List[int]:
    return clamp([3], n)


def balancebenchmark_flow(n: int, train: bool) -> List[int]:
    picks = 3
    seg = n // picks
    if train:
        if seg == 0:
            return [1] * picks
        return [i * seg + 1 + offset for i, offset in enumerate(torch.randint(0, seg, (picks,)).tolist())]
    return clamp([i * seg + max(seg // 2, 1) for i in range(picks)], n)


@dataclass(frozen=True)
class Recipe:
    name: str
    flow_frames: int                                # T of the flow clip
    flow_ordinals: Callable[[int, bool], List[int]]  # (n flow pairs, train) -> ordinals
    flow_encoder: str                               # "3d" or "2d" (models/flow_encoders.py)

    def rgb_ordinals(self, n: int, train: bool) -> List[int]:
        return rgb_ordinals(n, train)

    def reachable_rgb(self, n: int, train: bool) -> List[int]:
        """Every RGB ordinal the recipe may read."""
        return list(range(1, min(n, RGB_FRAMES * RGB_SEGMENT) + 1)) if train else sorted(set(rgb_ordinals(n, False)))

    def reachable_flow(self, n: int, train: bool) -> List[int]:
        """Every flow ordinal the recipe may read (the files worth checking before training)."""
        if not train or self.name == "release_2d":  # no random draw
            return sorted(set(self.flow_ordinals(n, train)))
        span = min(n, 1000) if self.name == "release" else n
        return list(range(1, max(1, span // self.flow_frames * self.flow_frames) + 1))


RECIPES = {recipe.name: recipe for recipe in (
    Recipe("release", 16, release_flow, "3d"),
    Recipe("release_2d", 1, release_2d_flow, "2d"),
    Recipe("balancebenchmark", 3, balancebenchmark_flow, "2d"),
)}


def recipe_named(name: str) -> Recipe:
    if name not in RECIPES:
        raise DataError(f"--recipe {name}: not one of {', '.join(RECIPES)}")
    return RECIPES[name]
