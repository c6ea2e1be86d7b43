"""Seeding. Per-epoch and per-sample seeds are derived from the run seed, so a resumed
run draws the same shuffles and augmentations as an uninterrupted one."""
import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch) % 2**31


def sample_seed(seed: int, epoch: int, index: int) -> int:
    return (epoch_seed(seed, epoch) * 1_000_033 + index) % 2**63
