"""Data Remixing (utils/methods/remix.py) against computations written here: each clip goes to the modality whose
separate head is LESS confident on it (KL to uniform in bits, the dataset's class count), the epoch trains the
last modality's subset first, each subset shuffled by (seed, epoch) and flagged; the warm-up loss; a masked step
(the other modalities' features zeroed, fused loss + gamma x the kept head's) with the masked encoder run in train
mode (zero gradient, BatchNorm moving) or skipped; three modalities; one process only; exact resume; bad flags."""
import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import main_CD
from conftest import TINY_FLAGS
from dataset.errors import DataError
from dataset.modalities import AUDIO_VISUAL
from helpers.stopped_runs import assert_same_numbers, straight_and_resumed
from helpers.tiny_models import THREE, build, method_args, tiny_batch, tiny_classifier
from utils import distributed
from utils.methods.remix import assign
from utils.methods.step import Step
from utils.precision import Precision


def remix(*flags, modalities=AUDIO_VISUAL, n_clips=12, seed=4, sharpen=(40.0, 11.0), n_classes=3):
    """(model with sharpened separate heads, method, batch of `n_clips`) with the method's pass reading the batch.
    `sharpen`: a factor on each head's weights, chosen so that every modality is the least confident on some clips
    (by 0.02 bits at least)."""
    model = tiny_classifier(n_classes, modalities=modalities)
    method = build(method_args("remix", *flags, modalities=modalities), modalities)
    method.configure_model(model)
    with torch.no_grad():  # confidences that differ from clip to clip and between the heads
        for head, factor in zip(model.unimodal_heads.values(), sharpen):
            head.weight.mul_(factor)
    method.split_train(list(range(n_clips)), 0)
    inputs, labels = tiny_batch(n_clips, seed, modalities)
    method.forward_batches = lambda dataset, keys: iter([(model.eval()(inputs), labels)])
    return model, method, inputs, labels


def their_kl(logits, n_classes):
    """train.py kl_divergence, per sample, in numpy."""
    out = []
    for row in F.softmax(logits, 1).numpy():
        p = np.clip(row, 1e-9, 1.0)
        out.append(np.sum(p * np.log2(p / np.full(n_classes, 1.0 / n_classes))))
    return np.array(out)


def test_each_clip_trains_the_less_confident_modality_visual_subset_first():
    model, method, inputs, labels = remix()
    with torch.no_grad():
        heads = model.eval()(inputs).heads
    kl_a, kl_v = their_kl(heads["audio"], 3), their_kl(heads["visual"], 3)
    audio = {i for i in range(12) if kl_a[i] < kl_v[i]}  # their remix(): audio if KL_audio < KL_video
    visual = set(range(12)) - audio
    assert audio and visual, "the test needs clips of both subsets"
    record = method.start_epoch(11, model, None)  # the first epoch after the 10 warm-up ones
    entries = method.train_entries(11)
    assert [flag for _, flag in entries] == [1] * len(visual) + [0] * len(audio)
    assert {i for i, f in entries if f == 1} == visual and {i for i, f in entries if f == 0} == audio
    assert record["remix_share_a"] == pytest.approx(len(audio) / 12)
    assert record["remix_kl_v"] == pytest.approx(kl_v.mean(), rel=1e-6)
    # each subset shuffled by (seed, epoch): drawn again the same, another epoch another order
    method.start_epoch(11, model, None)
    assert method.train_entries(11) == entries
    method.start_epoch(12, model, None)
    assert method.train_entries(12) != entries and sorted(method.train_entries(12)) == sorted(entries)
    method.args.remix_subset_order = "dataset"
    method.start_epoch(11, model, None)
    assert [flag for _, flag in method.train_entries(11)] == [0] * len(audio) + [1] * len(visual)


def test_the_warm_up_trains_on_every_clip_once_and_the_kl_uses_the_class_count():
    model, method, inputs, _ = remix(n_classes=5)  # the constant theirs hard-codes (6) would not follow the dataset
    assert method.start_epoch(10, model, None) == {} and method.train_entries(10) is None
    assert method.ordered_entries and method.homogeneous_batches
    with torch.no_grad():
        logits = model.eval()(inputs).heads["audio"]
    assert method.confidences(model)[:, 0].numpy() == pytest.approx(their_kl(logits, 5), rel=1e-6)


def test_a_tie_goes_to_the_later_modality():
    kl = torch.tensor([[1.0, 1.0], [0.5, 1.0], [1.0, 0.5], [2.0, 2.0]])
    assert assign(kl).tolist() == [1, 0, 1, 1]
    assert assign(torch.tensor([[1.0, 0.2, 0.2], [0.1, 0.3, 0.2]])).tolist() == [2, 0]


def sgd_step(model, method, inputs, labels, flags=None, lr=0.1):
    optimizer = torch.optim.SGD(method.param_groups(model), lr=lr)
    model.train()
    step = Step(model, model, optimizer, Precision("off", torch.device("cpu")), inputs, labels, 11, 0, flags=flags)
    return method.train_step(step)


def test_warm_up_loss_is_fused_plus_the_weighted_heads():
    model, method, inputs, labels = remix("--remix_audio_warmup_weight", "0.3", "--remix_visual_warmup_weight", "0.7")
    reference = copy.deepcopy(model).train()
    sgd_step(model, method, inputs, labels)
    out = reference(inputs)
    loss = F.cross_entropy(out.logits, labels) + 0.3 * F.cross_entropy(reference.unimodal_heads["audio"](out.enc["audio"]),
                                                                       labels) \
        + 0.7 * F.cross_entropy(reference.unimodal_heads["visual"](out.enc["visual"]), labels)
    loss.backward()
    torch.optim.SGD(reference.parameters(), lr=0.1).step()
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, msg=name)


@pytest.mark.parametrize("masked_encoder", ["run", "skip"])
@pytest.mark.parametrize("kept", [0, 1])
def test_a_modality_batch_zeroes_the_others_features_and_adds_its_heads_loss(masked_encoder, kept):
    model, method, inputs, labels = remix("--remix_audio_gamma", "2", "--remix_visual_gamma", "0.5",
                                          "--remix_masked_encoder", masked_encoder, n_clips=6)
    names = ["audio", "visual"]
    keep, drop = names[kept], names[1 - kept]
    gamma = {"audio": 2.0, "visual": 0.5}[keep]
    reference = copy.deepcopy(model).train()
    bn_before = model.encoders[drop].trunk[1].running_mean.clone()
    out, log = sgd_step(model, method, inputs, labels, flags=torch.full((6,), kept))
    assert log == {f"remix_batches_{'a' if keep == 'audio' else 'v'}": 1.0,
                   f"remix_batches_{'v' if keep == 'audio' else 'a'}": 0.0}
    # their forward(mode): the masked modality's pooled features set to 0 before the concat head
    enc = {keep: reference.encoders[keep](inputs[keep])}
    enc[drop] = reference.encoders[drop](inputs[drop]) * 0 if masked_encoder == "run" else torch.zeros_like(enc[keep])
    fused = reference.head(enc).logits
    loss = F.cross_entropy(fused, labels) + gamma * F.cross_entropy(reference.unimodal_heads[keep](enc[keep]), labels)
    loss.backward()
    torch.testing.assert_close(out.logits, fused)
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        want = q.grad
        if want is None:
            assert p.grad is None, name
        else:
            torch.testing.assert_close(p.grad, want, msg=name)
    dropped = [p.grad for p in model.encoders[drop].parameters()]
    moved = not torch.equal(model.encoders[drop].trunk[1].running_mean, bn_before)
    if masked_encoder == "run":  # theirs: the masked encoder runs in train mode and gets a zero gradient
        assert all(g is not None and not g.any() for g in dropped) and moved
    else:
        assert all(g is None for g in dropped) and not moved
    assert all(p.grad is None for p in model.unimodal_heads[drop].parameters())
    assert any(p.grad.abs().sum() > 0 for p in model.encoders[keep].parameters())


def test_three_modalities_take_the_least_confident_and_the_last_subset_first():
    model, method, inputs, _ = remix(modalities=THREE, n_clips=18, seed=5, sharpen=(12.0, 16.0, 20.0))
    with torch.no_grad():
        heads = model.eval()(inputs).heads
    kl = np.stack([their_kl(heads[m], 3) for m in "xyz"], 1)
    want = kl.argmin(1)
    assert len(set(want.tolist())) == 3, "the test needs clips of every subset"
    method.start_epoch(11, model, None)
    entries = method.train_entries(11)
    assert [f for _, f in entries] == sorted(want.tolist(), reverse=True)
    assert all(want[i] == f for i, f in entries) and sorted(i for i, _ in entries) == list(range(18))


def test_one_process_only(monkeypatch):
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    with pytest.raises(DataError, match="runs in one process only"):
        build(method_args("remix"))


def test_remix_resumes_exactly_between_and_inside_epochs(demo_root, tmp_path, monkeypatch):
    """The subsets are drawn from the checkpointed weights and (seed, epoch): 2 epochs straight (one warm-up, one
    remixed) equal 1 epoch, a resume stopped by SIGTERM after the second epoch's first step, and one for the rest."""
    flags = ["--train", "--data_root", str(demo_root), "--method", "remix", *TINY_FLAGS, "--remix_warmup", "1"]
    straight, resumed = straight_and_resumed(main_CD.main, flags, tmp_path, monkeypatch)
    row = straight[-1]
    assert "remix_share_a" not in straight[0] and row["remix_share_a"] + row["remix_share_v"] == pytest.approx(1)
    assert row["train_remix_batches_a"] + row["train_remix_batches_v"] == pytest.approx(1)
    assert_same_numbers(row, resumed[-1])
    assert math.isfinite(row["train_loss"])


@pytest.mark.parametrize("flag,value", [("--remix_warmup", "-1"), ("--remix_visual_gamma", "-0.5"),
                                        ("--remix_masked_encoder", "drop")])
def test_bad_flags_are_one_error_line(flag, value, capsys):
    with pytest.raises(SystemExit) as exit_:
        main_CD.main(["--train", "--method", "remix", flag, value])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and flag in err
    assert len([line for line in err.splitlines() if "error:" in line]) == 1
