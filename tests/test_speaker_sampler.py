"""The per-speaker batch sampler: distinct speakers per batch, a cap per speaker, fresh per epoch."""
from collections import Counter

from utils.sampling import SpeakerBatchSampler


def make_speakers():
    # 7 speakers with 1..13 utterances each, interleaved.
    speakers = []
    for s in range(7):
        speakers += [f"id{s:02d}"] * (1 + 2 * s)
    return speakers


def test_no_speaker_twice_in_a_batch_and_the_cap_holds():
    speakers = make_speakers()
    sampler = SpeakerBatchSampler(speakers, batch_size=4, max_per_speaker=5, seed=0)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = [[i for i, _ in b] for b in sampler]
        assert len(batches) == len(sampler)
        for batch in batches:
            assert len(batch) <= 4 and len({speakers[i] for i in batch}) == len(batch)
        used = Counter(speakers[i] for b in batches for i in b)
        assert all(used[s] == min(5, speakers.count(s)) for s in set(speakers))
        flat = [i for b in batches for i in b]
        assert len(flat) == len(set(flat))


def test_epochs_differ_and_replay_exactly():
    sampler = SpeakerBatchSampler(make_speakers(), batch_size=3, max_per_speaker=4, seed=1)
    sampler.set_epoch(1)
    first = list(sampler)
    sampler.set_epoch(2)
    assert list(sampler) != first
    sampler.set_epoch(1)
    assert list(sampler) == first


def test_processes_split_the_batches():
    speakers = make_speakers()
    parts = []
    for rank in range(2):
        sampler = SpeakerBatchSampler(speakers, batch_size=3, max_per_speaker=4, seed=2, num_replicas=2, rank=rank)
        parts.append([[i for i, _ in b] for b in sampler])
    whole = SpeakerBatchSampler(speakers, batch_size=3, max_per_speaker=4, seed=2).batches()
    assert len(parts[0]) == len(parts[1]) == len(whole) // 2
    assert parts[0] == whole[0:2 * len(parts[0]):2] and parts[1] == whole[1:2 * len(parts[1]):2]
