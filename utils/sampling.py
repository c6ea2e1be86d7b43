"""Samplers and loaders. Training keys are (index, augmentation seed) pairs so augmentation
is a function of (seed, epoch, sample) alone: the same with any worker count, on any rank,
before or after a resume. A method that resamples the training set hands the sampler the epoch's
entries, (index, flag) pairs; its keys are then (index, augmentation seed, flag) triples."""
import itertools
import random
from typing import List, Optional, Tuple

from torch.utils.data import DataLoader, DistributedSampler, Sampler

from . import distributed
from .seed import sample_seed


class SeededSampler(Sampler):
    """DistributedSampler's per-epoch order (a single replica by default), each index paired with its seed.
    After set_entries(entries) it orders the entries instead: entry j = (index, flag) gives the key
    (index, seed of position j, flag), so every copy of a clip gets its own augmentation."""

    def __init__(self, dataset, seed: int, shuffle: bool = True, num_replicas: int = 1, rank: int = 0):
        self.size, self.seed, self.epoch = len(dataset), seed, 0
        self.shuffle, self.num_replicas, self.rank = shuffle, num_replicas, rank
        self.set_entries(None)

    def set_entries(self, entries: Optional[List[Tuple[int, int]]], ordered: bool = False,
                    homogeneous: bool = False) -> None:
        """The samples of the coming epochs: (index, flag) entries, or None for each clip once. `ordered`: in the
        order given, not shuffled (the method decided it: BSS's self-paced order, Data Remixing's subsets);
        `homogeneous`: no batch mixes two flags (TrainBatches starts a new batch where the flag changes)."""
        self.entries, self.homogeneous = entries, homogeneous and entries is not None
        positions = range(self.size if entries is None else len(entries))
        self.order = DistributedSampler(positions, num_replicas=self.num_replicas, rank=self.rank,
                                        shuffle=self.shuffle and not (ordered and entries is not None), seed=self.seed)
        self.order.set_epoch(self.epoch)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.order.set_epoch(epoch)

    def __iter__(self):
        if self.entries is None:
            return ((i, sample_seed(self.seed, self.epoch, i)) for i in self.order)
        return (self._key(j) for j in self.order)

    def _key(self, position: int):
        index, flag = self.entries[position]
        return index, sample_seed(self.seed, self.epoch, position), flag

    def __len__(self) -> int:
        return len(self.order)


class TrainBatches(Sampler):
    """Batches of `batch_size` keys from `sampler`; a last batch of a single sample is left out, since
    BatchNorm cannot train on it. Decided every epoch, as a resampled train set changes its length. Where the
    sampler's entries are homogeneous (SeededSampler.set_entries), a batch ends where the flag changes, and a
    group's last batch of one sample is left out likewise."""

    def __init__(self, sampler, batch_size: int, drop_single: bool):
        self.sampler, self.batch_size, self.drop_single = sampler, batch_size, drop_single

    def _dropped(self) -> bool:
        return self.drop_single and len(self.sampler) % self.batch_size == 1

    def _homogeneous(self) -> bool:
        return getattr(self.sampler, "homogeneous", False)

    def __iter__(self):
        if self._homogeneous():
            yield from self._grouped()
            return
        batch, left = [], len(self.sampler) - self._dropped()
        for key in self.sampler:
            if left == 0:
                break
            batch.append(key)
            left -= 1
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def _grouped(self):
        """Consecutive keys of one flag, cut into batches."""
        batch = []
        for key in self.sampler:
            if batch and (key[-1] != batch[-1][-1] or len(batch) == self.batch_size):
                if len(batch) > 1 or not self.drop_single:
                    yield batch
                batch = []
            batch.append(key)
        if batch and (len(batch) > 1 or not self.drop_single):
            yield batch

    def __len__(self) -> int:
        if self._homogeneous():
            return sum(1 for _ in self._grouped())
        return -(-(len(self.sampler) - self._dropped()) // self.batch_size)


class ResumableBatches(Sampler):
    """Another batch sampler's batches, the first `skip` of them left out once: a run resumed inside an epoch
    draws the rest of that epoch's batches (the sampler's order is a function of the seed and epoch) without
    reading the clips it had trained on. set_epoch / set_entries reach the wrapped sampler."""

    def __init__(self, batches):
        self.batches, self.skip = batches, 0

    def __iter__(self):
        skip, self.skip = self.skip, 0
        return itertools.islice(iter(self.batches), skip, None)

    def __len__(self) -> int:
        return len(self.batches) - self.skip

    def set_epoch(self, epoch: int) -> None:
        self.batches.set_epoch(epoch)

    def set_entries(self, entries, **layout) -> None:
        self.batches.set_entries(entries, **layout)


def make_loader(dataset, batch_size: int, sampler, num_workers: int, pin_memory: bool,
                train: bool = False) -> DataLoader:
    if train:
        # BatchNorm cannot train on a batch of one; only then is the (shuffled) last sample left out.
        # (Distributed runs synchronise BatchNorm over all processes, so they never see a batch of one.)
        batches = TrainBatches(sampler, batch_size, drop_single=distributed.world_size() == 1)
        return make_batch_loader(dataset, ResumableBatches(batches), num_workers, pin_memory)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      pin_memory=pin_memory, persistent_workers=num_workers > 0)


def make_batch_loader(dataset, batch_sampler, num_workers: int, pin_memory: bool) -> DataLoader:
    """A loader whose batches come ready-made from `batch_sampler` (e.g. SpeakerBatchSampler)."""
    return DataLoader(dataset, batch_sampler=batch_sampler, num_workers=num_workers, pin_memory=pin_memory,
                      persistent_workers=num_workers > 0)


class SpeakerBatchSampler(Sampler):
    """Batches for speaker classification: no two utterances of one speaker in a batch, at most
    `max_per_speaker` utterances of each speaker per epoch (a fresh random choice every epoch).
    Yields lists of (index, augmentation seed) keys; call set_epoch like a DistributedSampler.
    With num_replicas > 1 each process takes every N-th batch (the count is cut to a multiple of N)."""

    def __init__(self, speakers, batch_size: int, max_per_speaker: int, seed: int = 0,
                 num_replicas: int = 1, rank: int = 0):
        self.speakers = list(speakers)
        self.batch_size, self.max_per_speaker, self.seed = batch_size, max_per_speaker, seed
        self.num_replicas, self.rank = num_replicas, rank
        self.epoch = 0
        self._made = (None, None)  # (epoch, batches): __len__ and __iter__ share one computation

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def set_entries(self, entries, **layout) -> None:
        """Speaker batches cover the utterances as they are; resampling methods are refused before training."""
        assert entries is None, "a resampled train set cannot be drawn in speaker batches"

    def batches(self):
        """The epoch's batches, identical on every process."""
        if self._made[0] != self.epoch:
            self._made = (self.epoch, self._make_batches())
        return self._made[1]

    def _make_batches(self):
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        by_speaker = {}
        for index, speaker in enumerate(self.speakers):
            by_speaker.setdefault(speaker, []).append(index)
        rounds = []  # round r holds the r-th chosen utterance of every speaker that has one
        for speaker in sorted(by_speaker, key=str):
            chosen = rng.sample(by_speaker[speaker], min(self.max_per_speaker, len(by_speaker[speaker])))
            for r, index in enumerate(chosen):
                if r == len(rounds):
                    rounds.append([])
                rounds[r].append(index)
        queue = []
        for group in rounds:
            rng.shuffle(group)
            queue += group
        # One pass: an utterance whose speaker is already in the batch waits for the next batch. Only
        # round boundaries cause waits, so the waiting list stays short (linear time for a million utterances).
        batches, waiting, stream = [], [], iter(queue)
        while True:
            batch, seen, still_waiting = [], set(), []
            for index in waiting:
                if len(batch) < self.batch_size and self.speakers[index] not in seen:
                    batch.append(index)
                    seen.add(self.speakers[index])
                else:
                    still_waiting.append(index)
            while len(batch) < self.batch_size:
                index = next(stream, None)
                if index is None:
                    break
                if self.speakers[index] in seen:
                    still_waiting.append(index)
                else:
                    batch.append(index)
                    seen.add(self.speakers[index])
            if not batch:
                break
            batches.append(batch)
            waiting = still_waiting
        usable = len(batches) - len(batches) % self.num_replicas
        return batches[:usable]

    def __iter__(self):
        for batch in self.batches()[self.rank::self.num_replicas]:
            yield [(i, sample_seed(self.seed, self.epoch, i)) for i in batch]

    def __len__(self) -> int:
        return len(self.batches()) // self.num_replicas
