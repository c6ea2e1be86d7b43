"""Which frames a clip feeds the model (--frame_pick) and how they are augmented (--frame_augment): the picks
against the reference loaders' formulas, typed as they wrote them (BalanceBenchmark KS_dataset.py:79-97 and
VGG_dataset.py:112-133, Valuate-and-Enhance dataloader.py:85-103, OGM-GE dataset.py:95-107), then the
dataset on a tree whose frame k is flat grey 20 k, so the picked frames can be read back from the output."""
import random

import numpy as np
import pytest
import torch
from PIL import Image

import main_AVE
import main_CD
import main_KS
import main_SSW
import main_VGG
from dataset.cache import file_stamp
from dataset.clips import AVClipDataset
from dataset.demo_cues import SAMPLE_RATE, synth_wave
from dataset.frame_picks import FramePick, pick_evenly, pick_fixed, pick_segments
from dataset.visual import ClipTransform

import soundfile


def bb_ordinals(file_num, train, pick_num=3):
    """BalanceBenchmark's KS / VGGSound loop, verbatim but for the frame count (their `t >= 10` cap guards
    file names frame_0000{t}.jpg and is left out: it never fires for n < 12)."""
    seg = int(file_num / pick_num)
    t = [0] * pick_num
    for i in range(pick_num):
        if train:
            t[i] = random.randint(i * seg + 1, i * seg + seg) if file_num > 2 * pick_num else 1
        else:
            t[i] = i * seg + max(int(seg / 2), 1) if file_num > 2 * pick_num else 1
    return t


# ---- the rules
def test_segments_test_pick_is_the_reference_formula():
    assert pick_segments(10, 3, train=False) == [0, 3, 6]  # ordinals 1, 4, 7
    for n in range(1, 40):
        for frames in (1, 2, 3, 4, 5):
            assert pick_segments(n, frames, train=False) == [t - 1 for t in bb_ordinals(n, False, frames)], (n, frames)


@pytest.mark.parametrize("n,frames", [(10, 3), (11, 3), (17, 3), (30, 3), (10, 4), (9, 2)])
def test_segments_training_draws_stay_in_their_segment_and_cover_it(n, frames):
    seg = n // frames
    seen = [set() for _ in range(frames)]
    for seed in range(300):
        torch.manual_seed(seed)
        for i, index in enumerate(pick_segments(n, frames, train=True)):
            assert i * seg + 1 <= index + 1 <= i * seg + seg  # their random.randint(i*seg + 1, i*seg + seg)
            seen[i].add(index + 1)
    random.seed(0)
    reference = [set() for _ in range(frames)]
    for _ in range(300):
        for i, t in enumerate(bb_ordinals(n, True, frames)):
            reference[i].add(t)
    assert seen == reference == [set(range(i * seg + 1, i * seg + seg + 1)) for i in range(frames)]


def test_short_clips_use_their_first_frame_throughout():
    for n in range(1, 7):  # their `file_num > 6` guard for 3 frames: n <= 2 T
        assert pick_segments(n, 3, train=True) == pick_segments(n, 3, train=False) == [0, 0, 0]
    assert pick_segments(7, 3, train=False) == [0, 2, 4]


def test_fixed_and_even_picks():
    for n in range(1, 40):
        seg = int(n / 3)
        assert pick_fixed(n, 3) == [seg * i + 1 - 1 for i in range(3)]  # OGM-GE: t[i] = seg * i + 1
    assert pick_fixed(10, 3) == [0, 3, 6] and pick_fixed(12, 3) == [0, 4, 8]
    assert pick_evenly(10, 3) == [1, 5, 8]  # this project's centres: ordinals 2, 6, 9
    fixed, even = FramePick("fixed", 3), FramePick("even", 3)
    assert not fixed.random_when_training() and not even.random_when_training()
    assert fixed.indices(12, True) == fixed.indices(12, False) and even.indices(12, True) == even.indices(12, False)


def test_the_entry_scripts_defaults():
    for entry in (main_KS, main_AVE, main_VGG):
        args = entry.build_parser().parse_args([])
        assert (args.frame_pick, args.frame_augment) == ("segments", "frame"), entry.__name__
    for entry in (main_CD, main_SSW):  # unchanged: their runs stay bit-for-bit what they were
        args = entry.build_parser().parse_args([])
        assert (args.frame_pick, args.frame_augment) == ("even", "clip"), entry.__name__


# ---- per-frame augmentation
def patterned(frames=4):
    frame = torch.arange(3 * 40 * 60, dtype=torch.int64).remainder(251).to(torch.uint8).view(1, 3, 40, 60)
    return frame.repeat(frames, 1, 1, 1)


def test_frame_augmentation_draws_each_frames_crop_and_flip_in_turn():
    clip = patterned()
    torch.manual_seed(3)
    per_frame = ClipTransform(True, 16, per_frame=True)(clip)
    assert per_frame.shape == (4, 3, 16, 16) and per_frame.dtype == torch.uint8
    assert len({per_frame[t].numpy().tobytes() for t in range(4)}) == 4  # the same image, four crops
    torch.manual_seed(3)
    one_by_one = torch.stack([ClipTransform(True, 16)(frame[None])[0] for frame in clip])
    assert torch.equal(per_frame, one_by_one)
    torch.manual_seed(3)
    shared = ClipTransform(True, 16, per_frame=False)(clip)
    assert all(torch.equal(shared[0], shared[t]) for t in range(4))
    assert torch.equal(ClipTransform(False, 16, per_frame=True)(clip), ClipTransform(False, 16)(clip))


# ---- the dataset
@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Clips whose frame k (sorted by name) is flat grey 20 k: 10 frames for c0, 13 for c1, 4 for c2."""
    root = tmp_path_factory.mktemp("graded")
    rng = np.random.default_rng(0)
    for clip, n in (("c0", 10), ("c1", 13), ("c2", 4)):
        (root / "frames" / clip).mkdir(parents=True)
        for k in range(n):
            Image.fromarray(np.full((30, 40, 3), 20 * k, np.uint8)).save(root / "frames" / clip / f"{k + 1:05d}.png")
        (root / "audio").mkdir(exist_ok=True)
        soundfile.write(root / "audio" / f"{clip}.wav", synth_wave(0, rng), SAMPLE_RATE, subtype="PCM_16")
    return root


def open_graded(root, train, pick="segments", augment="frame", frames=3):
    return AVClipDataset(root / "audio", root / "frames", [("c0", 0), ("c1", 1), ("c2", 0)], train=train,
                         image_size=16, num_frames=frames, audio_seconds=0.5, frame_pick=pick, frame_augment=augment)


def frame_numbers(visual):
    """The k of each output frame (flat frames stay flat through crops, flips and resizes)."""
    return [int(round(visual[:, t].float().mean().item() / 20)) for t in range(visual.shape[1])]


def test_training_items_pick_inside_each_segment_reproducibly(graded):
    train = open_graded(graded, True)
    assert [len(frames) for *_, frames in train.items] == [10, 13, 4]  # every frame kept for the draw
    seen = set()
    for seed in range(40):
        picked = frame_numbers(train[(0, seed)][1])
        assert all(3 * i <= k < 3 * i + 3 for i, k in enumerate(picked))
        seen.add(tuple(picked))
        torch.manual_seed(seed + 1000)  # the global state does not matter, the key's seed does
        assert torch.equal(train[(1, seed)][1], train[(1, seed)][1])
        assert frame_numbers(train[(2, seed)][1]) == [0, 0, 0]  # 4 <= 2 x 3 frames
    assert len(seen) > 15


def test_test_items_and_the_evaluation_view_take_the_test_pick(graded):
    test = open_graded(graded, False)
    assert [len(frames) for *_, frames in test.items] == [3, 3, 3]  # only the picked frames are decoded
    view = open_graded(graded, True).evaluation_view()
    for index, expected in enumerate(([0, 3, 6], [1, 5, 9], [0, 0, 0])):
        assert frame_numbers(test[index][1]) == expected
        assert torch.equal(view[(index, 5)][1], test[index][1])


@pytest.mark.parametrize("pick,expected", [("fixed", [[0, 3, 6], [0, 4, 8], [0, 1, 2]]),
                                           ("even", [[1, 5, 8], [2, 6, 10], [0, 2, 3]])])
def test_fixed_and_even_are_picked_once_for_training_and_testing(graded, pick, expected):
    for train in (True, False):
        ds = open_graded(graded, train, pick, "clip")
        assert [frame_numbers(ds[(i, 7)][1]) for i in range(3)] == expected


def test_even_and_clip_keep_the_cache_signature_of_before(graded):
    """CREMA-D's and SSW60's caches stay valid: the signature lists the picked frames, as it always did."""
    ds = open_graded(graded, True, "even", "clip")
    frames = sorted((graded / "frames" / "c1").iterdir())
    assert ds.cache_signature()["items"][1] == ["c1", file_stamp(graded / "audio" / "c1.wav"),
                                                [file_stamp(frames[i]) for i in pick_evenly(13, 3)]]
    assert ds.cache_signature() != open_graded(graded, True).cache_signature()
