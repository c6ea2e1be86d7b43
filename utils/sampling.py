"""Samplers and loaders. Training keys are (index, augmentation seed) pairs so augmentation
is a function of (seed, epoch, sample) alone: the same with any worker count, on any rank,
before or after a resume."""
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from . import distributed
from .seed import sample_seed


class SeededSampler(Sampler):
    """DistributedSampler's per-epoch order (a single replica by default), each index paired with its seed."""

    def __init__(self, dataset, seed: int, shuffle: bool = True, num_replicas: int = 1, rank: int = 0):
        self.order = DistributedSampler(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.order.set_epoch(epoch)

    def __iter__(self):
        return ((i, sample_seed(self.seed, self.epoch, i)) for i in self.order)

    def __len__(self) -> int:
        return len(self.order)


def make_loader(dataset, batch_size: int, sampler, num_workers: int, pin_memory: bool,
                train: bool = False) -> DataLoader:
    # BatchNorm cannot train on a batch of one; only then is the (shuffled) last sample left out.
    # (Distributed runs synchronise BatchNorm over all processes, so they never see a batch of one.)
    drop_last = train and distributed.world_size() == 1 and len(sampler) % batch_size == 1
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      pin_memory=pin_memory, persistent_workers=num_workers > 0, drop_last=drop_last)
