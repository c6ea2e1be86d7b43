"""BSS (utils/methods/bss.py) against computations written here: the loss (weighted fused + separate-head
cross-entropies) and the prediction (sum of the separate heads, optionally with the fused head); the balance
scores (cosine of the heads' softmax outputs, mean over pairs for three modalities, and the weighted per-sample
loss, min-max normalised); CL's easy-first subsets growing with the root pacing from scores taken once; SPL's
per-epoch multinomial order without replacement, seeded by (seed, epoch); exact resume; the heads_sum predictor
read back from the checkpoint; bad flags."""
import math
from itertools import combinations

import pytest
import torch
import torch.nn.functional as F

import main_CD
from conftest import TINY_FLAGS
from dataset.modalities import AUDIO_VISUAL
from helpers.stopped_runs import assert_same_numbers, straight_and_resumed
from helpers.tiny_models import THREE, build, method_args, tiny_batch, tiny_classifier
from utils.methods.bss import head_similarity, min_max, pacing
from utils.seed import epoch_seed


def bss(*flags, modalities=AUDIO_VISUAL, n_clips=12, seed=4):
    """(model, method, batch of `n_clips`) with the method's scoring pass reading the batch (eval mode)."""
    model = tiny_classifier(3, modalities=modalities)
    method = build(method_args("bss", *flags, modalities=modalities), modalities)
    method.configure_model(model)
    with torch.no_grad():  # scores that vary from clip to clip
        for head in model.unimodal_heads.values():
            head.weight.mul_(20.0)
    method.split_train(list(range(n_clips)), 0)
    inputs, labels = tiny_batch(n_clips, seed, modalities)
    method.forward_batches = lambda dataset, keys: iter([(model.eval()(inputs), labels)])
    return model, method, inputs, labels


def their_scores(model, inputs, labels, names, fused_weight=0.1, unimodal_weight=0.9):
    """train-CL.py model_evaluate / NVGesture's mean over pairs: (similarity, loss) per clip, in float64."""
    with torch.no_grad():
        out = model.eval()(inputs)
        _, fused = model.fusion(out.enc)  # linear_last on the features: the fused head, not the prediction
        heads = [model.unimodal_heads[m](out.enc[m]).double() for m in names]
    probs = [F.softmax(h, 1) for h in heads]
    sims = [F.cosine_similarity(p, q, dim=1) for p, q in combinations(probs, 2)]
    similarity = sum(sims) / len(sims)
    ce = lambda z: F.cross_entropy(z, labels, reduction="none")  # noqa: E731
    loss = unimodal_weight * sum(ce(h) for h in heads) + fused_weight * ce(fused.double())
    return similarity, loss


def their_normalize(values):
    values = values.tolist()
    low, high = min(values), max(values)
    return torch.tensor([(v - low) / (high - low) for v in values], dtype=torch.float64)


def test_cl_trains_the_easiest_clips_first_from_scores_taken_once():
    model, method, inputs, labels = bss("--bss_lambda0", "0.5", "--bss_grow_epochs", "4")
    similarity, loss = their_scores(model, inputs, labels, ["audio", "visual"])
    score = (1 - their_normalize(similarity)) + their_normalize(loss)
    easiest = sorted(range(12), key=lambda k: score[k].item())  # their sorted(..., reverse=False)
    assert not method.ordered_entries
    record = method.start_epoch(1, model, None)
    assert record["bss_similarity"] == pytest.approx(similarity.mean().item(), rel=1e-5)
    sizes = []
    for epoch in (1, 2, 4, 9):
        if epoch > 1:  # scored once: the pass is never run again
            method.forward_batches = None
            method.start_epoch(epoch, model, None)
        lam = min(1, math.sqrt((1 - 0.5 ** 2) / 4 * (epoch - 1 + 1) + 0.5 ** 2))  # their 0-based epoch
        entries = method.train_entries(epoch)
        assert entries == [(i, 0) for i in easiest[:int(12 * lam)]]
        sizes.append(len(entries))
    assert sizes == [7, 9, 12, 12] and easiest[:7] != list(range(7))  # a subset the clip order would not give
    # the order lives in the method's state: a resumed run trains the same subsets without scoring
    again = build(method_args("bss", "--bss_lambda0", "0.5", "--bss_grow_epochs", "4"))
    again.load_state_dict(method.state_dict())
    again.split_train(list(range(12)), 0)
    again.start_epoch(2, model, None)
    assert again.train_entries(2) == [(i, 0) for i in easiest[:9]]


def test_pacing_is_their_root_schedule():
    for epoch in range(60):  # their 0-based loop
        want = min(1, math.sqrt((1 - 0.1 ** 2) / 40 * (epoch + 1) + 0.1 ** 2))
        assert pacing(epoch + 1, 0.1, 40) == pytest.approx(want)
    assert int(100 * pacing(1, 0.1, 40)) == 18 and pacing(40, 0.1, 40) == 1.0


def test_spl_draws_every_clip_once_in_a_score_weighted_order_each_epoch():
    model, method, inputs, labels = bss("--bss_mode", "spl", "--bss_fused_weight", "0.4",
                                        "--bss_unimodal_weight", "0.3")
    assert method.ordered_entries
    similarity, loss = their_scores(model, inputs, labels, ["audio", "visual"], 0.4, 0.3)
    weights = 1 - (their_normalize(loss) - their_normalize(similarity)) + 1e-2  # train-SPL.py assign_weights
    orders = {}
    for epoch in (1, 2):
        record = method.start_epoch(epoch, model, None)
        generator = torch.Generator().manual_seed(epoch_seed(method.args.random_seed, epoch))
        drawn = torch.multinomial(weights / weights.sum(), 12, replacement=False, generator=generator)
        orders[epoch] = method.train_entries(epoch)
        assert orders[epoch] == [(int(i), 0) for i in drawn]
        assert record["bss_share"] == 1.0 and record["bss_weight_min"] == pytest.approx(weights.min().item(), rel=1e-5)
    assert orders[1] != orders[2]
    # the same epoch draws the same order again (a resumed run); heavy clips come first in expectation
    method.start_epoch(1, model, None)
    first = method.train_entries(1)
    method.start_epoch(1, model, None)
    assert method.train_entries(1) == first


def test_spl_puts_heavy_clips_first():
    """Over many draws, a clip's mean position rises with its loss (lighter: heavier weight: earlier), as their
    easy-first in expectation."""
    model, method, *_ = bss("--bss_mode", "spl", n_clips=4)
    method.scores = lambda model, epoch: (torch.zeros(4, dtype=torch.float64),
                                          torch.tensor([0.0, 1.0, 2.0, 3.0], dtype=torch.float64))
    position = torch.zeros(4)
    for epoch in range(1, 201):
        method.start_epoch(epoch, model, None)
        for rank, (clip, _) in enumerate(method.train_entries(epoch)):
            position[clip] += rank
    assert position.argsort().tolist() == [0, 1, 2, 3]


def test_similarity_of_three_modalities_is_the_mean_over_pairs_and_constant_scores_normalise_to_zero():
    model, method, inputs, labels = bss(modalities=THREE)
    similarity, loss = their_scores(model, inputs, labels, ["x", "y", "z"])
    mine_sim, mine_loss = method.scores(model, 1)
    torch.testing.assert_close(mine_sim, similarity, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(mine_loss, loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(head_similarity([torch.ones(2, 3), torch.ones(2, 3)]), torch.ones(2))
    assert min_max(torch.full((3,), 2.0)).tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("predict", ["heads", "heads_and_fused"])
def test_loss_and_prediction(predict):
    model, method, inputs, labels = bss("--bss_predict", predict, "--bss_fused_weight", "0.2",
                                        "--bss_unimodal_weight", "0.7")
    model.train()
    out = model(inputs)
    _, fused = model.fusion(out.enc)
    heads = {m: model.unimodal_heads[m](out.enc[m]) for m in ("audio", "visual")}
    want = heads["audio"] + heads["visual"] + (fused if predict == "heads_and_fused" else 0)
    torch.testing.assert_close(out.logits, want)
    loss = 0.2 * F.cross_entropy(fused, labels) + 0.7 * (F.cross_entropy(heads["audio"], labels)
                                                         + F.cross_entropy(heads["visual"], labels))
    torch.testing.assert_close(method.loss(out, labels, 1), loss)


def test_bss_cl_resumes_exactly_and_its_checkpoint_predicts_with_the_heads(demo_root, tmp_path, monkeypatch):
    """The order scored before the first epoch is in last.pt: 2 epochs straight equal 1 epoch, a resume stopped by
    SIGTERM after the second epoch's first step, and one for the rest. --ckpt_path rebuilds the summed heads."""
    flags = ["--train", "--data_root", str(demo_root), "--method", "bss", *TINY_FLAGS, "--bss_lambda0", "0.5",
             "--bss_grow_epochs", "3"]
    straight, resumed = straight_and_resumed(main_CD.main, flags, tmp_path, monkeypatch)
    row = straight[-1]
    assert "bss_similarity" in straight[0] and "bss_similarity" not in row  # scored once
    assert [r["bss_share"] for r in straight] == pytest.approx([int(18 * pacing(e, 0.5, 3)) / 18 for e in (1, 2)])
    assert_same_numbers(row, resumed[-1])
    stats = main_CD.main(["--ckpt_path", str(tmp_path / "straight" / "last.pt"), "--no_progress"])
    assert stats["acc"] == pytest.approx(row["test_acc"]) and stats["loss"] == pytest.approx(row["test_loss"], rel=1e-5)


@pytest.mark.parametrize("flag,value", [("--bss_mode", "random"), ("--bss_lambda0", "1.5"),
                                        ("--bss_grow_epochs", "0"), ("--bss_fused_weight", "-1")])
def test_bad_flags_are_one_error_line(flag, value, capsys):
    with pytest.raises(SystemExit) as exit_:
        main_CD.main(["--train", "--method", "bss", flag, value])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and flag in err
    assert len([line for line in err.splitlines() if "error:" in line]) == 1
