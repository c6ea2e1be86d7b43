"""IPRM against direct computations of the authors' main_av.py: the probe's rebalanced weights (KL ratio, direction,
swapped modalities), the EMA of the mixing weights, the learning loss through the slerp, and resume / checkpoint
evaluation from the command line."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F

import main_CD
from conftest import TINY_FLAGS
from dataset.errors import DataError
from helpers.stopped_runs import assert_same_numbers, straight_and_resumed
from helpers.tiny_models import THREE, build, method_args, tiny_batch, tiny_classifier
from utils.methods.step import Step
from utils.precision import Precision


def slerp(x, y, wx, wy):
    """The authors' slerp (main_av.py:62-77)."""
    x, y = x / x.norm(dim=1, keepdim=True), y / y.norm(dim=1, keepdim=True)
    theta = torch.acos((x * y).sum(1).clamp(-1.0, 1.0))[:, None]
    return (torch.sin(wx * theta) * x + torch.sin(wy * theta) * y) / (torch.sin(theta) + 1e-8)


def kl(logits1, logits2):
    """The authors' compute_kl_divergence: batch mean of KL(softmax(logits1) || softmax(logits2))."""
    p, q = F.softmax(logits1, -1), F.softmax(logits2, -1)
    return (p * (p.log() - q.log())).sum(-1).mean()


def mixup_logits(model, f_a, f_v, lam_a, lam_v):
    """head_mixup(slerp); under MMCosine the whole mix scored as s cos(slerp, W)."""
    w, b = model.fusion.fc_out.weight, model.fusion.fc_out.bias
    if not model.mmcosine:
        return F.linear(slerp(f_a, f_v, lam_a, lam_v), w, b)
    return model.scaling * F.normalize(slerp(f_a, f_v, lam_a, lam_v), dim=1) @ F.normalize(w, dim=1).t()


def their_probe(model, f_a, f_v, lam_a, lam_v):
    """(KL_a, KL_v, lamhat_a, lamhat_v) of main_av.py:117-132."""
    heads = model.unimodal_heads
    with torch.no_grad():
        mixed = mixup_logits(model, f_a, f_v, lam_a, lam_v)
        kl_a, kl_v = kl(heads["audio"](f_a), mixed), kl(heads["visual"](f_v), mixed)
    return kl_a, kl_v, kl_v / (kl_a + kl_v), kl_a / (kl_a + kl_v)


def iprm_model(mmcosine=False, seed=0):
    model = tiny_classifier(3, mmcosine=mmcosine, seed=seed)
    build(method_args("iprm")).configure_model(model)
    with torch.no_grad():  # a confident audio head: its prediction is far from the mix
        model.unimodal_heads["audio"].weight.mul_(30.0)
    return model


def test_the_rebalanced_weights_are_the_partners_kl_share_and_swap_with_the_modalities():
    model = iprm_model()
    method = build(method_args("iprm"))
    g = torch.Generator().manual_seed(0)
    f_a, f_v = torch.rand(6, 512, generator=g), torch.rand(6, 512, generator=g)  # non-negative, as after a ReLU
    labels = torch.arange(6) % 3
    method.probe(model, {"audio": f_a, "visual": f_v}, labels)
    kl_a, kl_v, lamhat_a, lamhat_v = their_probe(model, f_a, f_v, 0.5, 0.5)
    torch.testing.assert_close(method.lamhat, torch.stack([lamhat_a, lamhat_v]))
    assert method.logged["iprm_kl_a"] == pytest.approx(kl_a.item(), rel=1e-5)
    assert model.fusion.weights == pytest.approx({"audio": lamhat_a.item(), "visual": lamhat_v.item()})
    # the modality whose prediction is farther from the mix weighs less in the next mix
    assert kl_a > 2 * kl_v and lamhat_a < 0.4 < 0.6 < lamhat_v
    # the modalities swapped (features and heads): the weights swap
    swapped = copy.deepcopy(model)
    swapped.unimodal_heads["audio"].load_state_dict(model.unimodal_heads["visual"].state_dict())
    swapped.unimodal_heads["visual"].load_state_dict(model.unimodal_heads["audio"].state_dict())
    again = build(method_args("iprm"))
    again.probe(swapped, {"audio": f_v, "visual": f_a}, labels)
    torch.testing.assert_close(again.lamhat, method.lamhat.flip(0))


def steps(model, method, batches, lr=0.0):
    optimizer = torch.optim.SGD(method.param_groups(model), lr=lr)
    logs = []
    for index, (inputs, labels) in enumerate(batches):
        step = Step(model, model, optimizer, Precision("off", torch.device("cpu")), inputs, labels, 1, index)
        logs.append(dict(method.train_step(step)[1]))
    return logs


def test_the_mixing_weights_follow_the_authors_ema():
    """Three steps on one batch, nothing learning (lr 0): the probe's lambda is alpha lambda(prev) + (1 - alpha)
    lamhat(prev) from 0.5, lamhat is the probe at it, and the buffer keeps the last lambda (what the test uses)."""
    method = build(method_args("iprm", "--iprm_alpha", "0.6"))
    model = iprm_model()
    inputs, labels = tiny_batch(6)
    logs = steps(model, method, [(inputs, labels)] * 3)
    enc = model.encode(inputs)
    lam, lamhat = 0.5, None
    for log in logs:
        if lamhat is not None:
            lam = 0.6 * lam + 0.4 * lamhat
        lamhat = their_probe(model, enc["audio"], enc["visual"], lam, 1 - lam)[2].item()
        assert log["iprm_lambda_a"] == pytest.approx(lam, rel=1e-5)
        assert log["iprm_lambda_v"] == pytest.approx(1 - lam, rel=1e-5)
        assert log["iprm_weight_a"] == pytest.approx(lamhat, rel=1e-4)
    assert logs[0]["iprm_lambda_a"] == 0.5 and logs[2]["iprm_lambda_a"] != pytest.approx(0.5, abs=1e-3)
    torch.testing.assert_close(model.fusion.mix, torch.tensor([lam, 1 - lam]))
    assert model.fusion.weights is None and model.feature_transform is None


@pytest.mark.parametrize("mmcosine", [False, True])
def test_the_loss_is_the_mixup_at_the_rebalanced_weights_plus_the_heads(mmcosine):
    """The gradients of one step are those of CE(head_mixup(slerp(f_a, f_v; lamhat))) + CE(h_a) + CE(h_v)."""
    method = build(method_args("iprm"))
    model = iprm_model(mmcosine)
    reference = copy.deepcopy(model)
    inputs, labels = tiny_batch(6)
    steps(model, method, [(inputs, labels)])

    def their_gradients(swap=False):
        ref = copy.deepcopy(reference)
        enc = ref.encode(inputs)
        _, _, lamhat_a, lamhat_v = their_probe(ref, enc["audio"], enc["visual"], 0.5, 0.5)
        if swap:
            lamhat_a, lamhat_v = lamhat_v, lamhat_a
        loss = (F.cross_entropy(mixup_logits(ref, enc["audio"], enc["visual"], lamhat_a, lamhat_v), labels)
                + F.cross_entropy(ref.unimodal_heads["audio"](enc["audio"]), labels)
                + F.cross_entropy(ref.unimodal_heads["visual"](enc["visual"]), labels))
        loss.backward()
        return {n: p.grad for n, p in ref.named_parameters() if p.grad is not None}
    want = their_gradients()
    mine = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert mine.keys() == want.keys()
    for name, grad in want.items():
        torch.testing.assert_close(mine[name], grad, rtol=1e-4, atol=1e-6, msg=name)
    swapped = their_gradients(swap=True)["encoders.audio.trunk.0.weight"]
    # the test tells the weights apart, with MMCosine too (the mix is scored as one vector)
    assert not torch.allclose(swapped, want["encoders.audio.trunk.0.weight"], rtol=1e-3)


def test_iprm_resumes_exactly_and_its_checkpoint_evaluates_to_the_logged_accuracy(demo_root, tmp_path, monkeypatch):
    """lamhat (method state) and lambda (the fusion's buffer) carry over: 2 epochs straight equal 1 epoch, a resume
    stopped by SIGTERM after the second epoch's first step, and a resume for the rest; best.pt evaluates alone to
    its epoch's logged test accuracy (the summed heads, the mix at the buffer)."""
    flags = ["--train", "--data_root", str(demo_root), "--method", "iprm", *TINY_FLAGS, "--iprm_alpha", "0.5"]
    straight, resumed = straight_and_resumed(main_CD.main, flags, tmp_path, monkeypatch)
    assert math.isfinite(straight[-1]["train_iprm_weight_a"])
    assert_same_numbers(straight[-1], resumed[-1])
    mix = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)["model"]["fusion.mix"]
    assert mix.sum().item() == pytest.approx(1.0) and abs(mix[0].item() - 0.5) > 1e-4
    best = max(straight, key=lambda r: r["test_acc"])
    stats = main_CD.main(["--ckpt_path", str(tmp_path / "straight" / "best.pt"), "--no_progress"])
    assert stats["acc"] == pytest.approx(best["test_acc"])
    assert stats["loss"] == pytest.approx(best["test_loss"], rel=1e-5)


def test_bad_alpha_is_one_error_line_and_three_modalities_are_refused(capsys):
    with pytest.raises(SystemExit) as exit_:
        main_CD.main(["--train", "--method", "iprm", "--iprm_alpha", "1.5"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "--iprm_alpha" in err
    assert len([line for line in err.splitlines() if "error:" in line]) == 1
    with pytest.raises(DataError, match="defined for 2 modalities"):
        build(method_args("iprm", modalities=THREE), THREE)
