"""Held-out parts of the training split, for the methods that need a validation signal
(G-Blending, dynamic MSLR, Re-learning, LFM): never trained on, chosen by the seed alone."""
import random
from typing import List, Tuple

from torch.utils.data import Dataset


class KeyedSubset(Dataset):
    """A subset of one of our datasets whose keys may be (index, augmentation seed) pairs."""

    def __init__(self, dataset, indices):
        self.dataset, self.indices = dataset, list(indices)

    def __len__(self):
        return len(self.indices)

    @property
    def labels(self):
        return [self.dataset.labels[i] for i in self.indices]

    def __getitem__(self, key):
        if isinstance(key, tuple):
            return self.dataset[(self.indices[key[0]], key[1])]
        return self.dataset[self.indices[key]]


def held_out(train, indices) -> KeyedSubset:
    """Clips of the train split scored as validation clips are: without augmentation (held-out clips, and
    Re-learning's clean pass over the clips it trains on)."""
    return KeyedSubset(train.evaluation_view() if hasattr(train, "evaluation_view") else train, indices)


def shuffled_split(n_items: int, fraction: float, seed: int) -> Tuple[List[int], List[int]]:
    """(held-out indices, the rest in shuffled order): round(fraction * n) items, at least one."""
    order = list(range(n_items))
    random.Random(seed).shuffle(order)
    n_hold = max(1, int(round(n_items * fraction)))
    return order[:n_hold], order[n_hold:]
