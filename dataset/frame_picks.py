"""Which of a clip's frames (sorted by name) feed the model: T = --num_frames of them, by one of three rules.

- segments: the GeWu-Lab loaders (BalanceBenchmark KS_dataset.py:79-97 and VGG_dataset.py:112-133,
  Valuate-and-Enhance dataloader.py:85-103). With n frames and seg = n // T, training draws frame
  ordinal t_i uniformly in [i*seg + 1, i*seg + seg] (a random frame inside each segment), testing takes
  t_i = i*seg + max(seg // 2, 1) (ordinals 1, 4, 7 of 10); a clip of n <= 2T frames uses its first frame
  throughout (their `file_num > 6` guard for T = 3). Their training cap `t >= 10 -> 9` only guards file
  names that do not exist; here it is "never past the last frame", which the formula already keeps.
- fixed: OGM-GE's dataset/dataset.py:95-107, t_i = i*seg + 1 for training and testing (1, 4, 7 of 10).
- even: this project's choice, the centres of T equal parts for training and testing (2, 6, 9 of 10).

Ordinals are 1-based positions in the sorted list (their frame_0000{t}.jpg, image_samples[t - 1]);
the functions here return 0-based indices.
"""
from typing import List, Optional

import torch

FRAME_PICKS = ("segments", "fixed", "even")


def pick_evenly(n_available: int, n_wanted: int) -> List[int]:
    """n_wanted indices spread over the clip: the centres of n_wanted equal parts (repeats if too few)."""
    return [min(n_available - 1, int((i + 0.5) * n_available / n_wanted)) for i in range(n_wanted)]


def pick_fixed(n_available: int, n_wanted: int) -> List[int]:
    seg = n_available // n_wanted
    return [seg * i for i in range(n_wanted)]


def pick_segments(n_available: int, n_wanted: int, train: bool,
                  generator: Optional[torch.Generator] = None) -> List[int]:
    """The GeWu-Lab rule (see the module docstring); training draws come from torch's generator, which the
    datasets seed per (seed, epoch, sample)."""
    if n_available <= 2 * n_wanted:
        return [0] * n_wanted
    seg = n_available // n_wanted
    if train:
        offsets = torch.randint(0, seg, (n_wanted,), generator=generator).tolist()
    else:
        offsets = [max(seg // 2, 1) - 1] * n_wanted
    return [min(n_available - 1, i * seg + offset) for i, offset in enumerate(offsets)]


class FramePick:
    """One --frame_pick rule for T frames. `random` picks (segments at training) are made per item, from
    every frame of the clip; the others are fixed when the dataset lists its clips."""

    def __init__(self, mode: str, num_frames: int):
        if mode not in FRAME_PICKS:
            raise ValueError(f"frame pick {mode!r} is not one of {', '.join(FRAME_PICKS)}")
        self.mode, self.num_frames = mode, num_frames

    def random_when_training(self) -> bool:
        return self.mode == "segments"

    def indices(self, n_available: int, train: bool) -> List[int]:
        if self.mode == "segments":
            return pick_segments(n_available, self.num_frames, train)
        if self.mode == "fixed":
            return pick_fixed(n_available, self.num_frames)
        return pick_evenly(n_available, self.num_frames)
