"""CGGM: the coefficients as the authors' loop computes them, three training steps against a direct transcription
of their step (separate backward passes, l_gm kept with its graph into the next step, their cal_cos on clones),
on the audio-visual pair and the generated three-modality set; exact resume; bad flags."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F

import main_CD
from conftest import TINY_FLAGS
from dataset.modalities import AUDIO_VISUAL
from helpers.stopped_runs import assert_same_numbers, straight_and_resumed
from helpers.tiny_models import THREE, build, method_args, tiny_batch, tiny_classifier
from utils.methods.cggm import cggm_coefficients, direction_loss
from utils.methods.step import Step
from utils.precision import Precision


def their_coefficients(acc2, acc1):
    """foodtrain.py:100-106, literally."""
    diff = [acc2[i] - acc1[i] for i in range(len(acc2))]
    diff_sum = sum(diff) + 1e-8
    coeff = list()
    for d in diff:
        coeff.append((diff_sum - d) / diff_sum)
    return coeff


def test_coefficients_are_the_authors_and_the_clamp_bounds_them():
    acc, prev = {"a": 0.5, "v": 0.25, "z": 0.75}, {"a": 0.25, "v": 0.5, "z": 0.25}
    want = their_coefficients([0.5, 0.25, 0.75], [0.25, 0.5, 0.25])
    assert list(cggm_coefficients(acc, prev).values()) == pytest.approx(want)
    two = cggm_coefficients({"a": 0.5, "v": 0.375}, {"a": 0.25, "v": 0.25})  # coeff_a = diff_v / (diff_a + diff_v)
    assert two == pytest.approx({"a": 0.125 / 0.375, "v": 0.25 / 0.375})
    # gains that cancel: the authors' coefficients explode and one turns negative; the clamp keeps them in [0, C]
    wild = cggm_coefficients({"a": 0.5, "v": 0.25}, {"a": 0.25, "v": 0.5})
    assert wild["a"] < -1e6 and wild["v"] > 1e6
    assert cggm_coefficients({"a": 0.5, "v": 0.25}, {"a": 0.25, "v": 0.5}, clamp=2.0) == {"a": 0.0, "v": 2.0}


def test_direction_loss_is_their_cal_cos_formula():
    g = torch.Generator().manual_seed(0)
    aux = {m: torch.randn(3, 5, generator=g) for m in "av"}
    fusion = {m: torch.randn(3, 5, generator=g, requires_grad=True) for m in "av"}
    coeff = {"a": 1.5, "v": -0.5}
    value = direction_loss(coeff, aux, fusion)
    cos = [F.cosine_similarity(aux[m].view(-1), fusion[m].view(-1), dim=0) for m in "av"]
    assert value.item() == pytest.approx(((1.5 + 0.5) - (1.5 * cos[0] - 0.5 * cos[1])).item() / 2)
    value.backward()
    assert fusion["a"].grad.norm() > 0 and fusion["v"].grad.norm() > 0
    # evaluated at earlier weights, with the gradient reaching the current ones
    later = {m: (w.detach() + 1.0).requires_grad_() for m, w in fusion.items()}
    shifted = direction_loss(coeff, aux, later, at={m: w.detach() for m, w in fusion.items()})
    assert shifted.item() == pytest.approx(value.item())
    shifted.backward()
    for m in "av":
        torch.testing.assert_close(later[m].grad, fusion[m].grad)


def their_steps(model, batches, lr, cls_lr, cls_wd, rho, lamda, clip, clamp=None):
    """The authors' training loop (foodtrain.py:59-135) on our model: the aux heads (their `classifier`, in their own
    optimizer group) on the encoders' detached features; the fusion weight is the modality's slice of the fused head.
    Returns the gradients each optimizer step used."""
    names = list(model.names)
    heads = list(model.unimodal_heads.parameters())
    rest = [p for p in model.parameters() if all(p is not h for h in heads)]
    optimizer = torch.optim.SGD(rest, lr=lr)
    cls_optimizer = torch.optim.SGD(heads, lr=cls_lr, weight_decay=cls_wd)
    acc1, l_gm, used = [0] * len(names), None, []
    for inputs, labels in batches:
        model.zero_grad()
        out = model(inputs)
        hs = [out.enc[m].clone().detach() for m in names]
        raw_loss = F.cross_entropy(out.logits, labels)
        if l_gm is not None:
            raw_loss = raw_loss + lamda * l_gm
        raw_loss.backward()
        cls_optimizer.zero_grad()
        cls_res = [model.unimodal_heads[m](h) for m, h in zip(names, hs)]
        fusion = model.classifier_weights()
        cls_loss = sum(F.cross_entropy(r, labels) for r in cls_res)
        cls_loss.backward()
        llist = [F.cosine_similarity(model.unimodal_heads[m].weight.clone().view(-1), fusion[m].clone().reshape(-1),
                                     dim=0) for m in names]  # cal_cos, per modality slice
        acc2 = [(r.argmax(1) == labels).float().mean().item() for r in cls_res]
        coeff = their_coefficients(acc2, acc1)
        if clamp is not None:
            coeff = [min(max(c, 0.0), clamp) for c in coeff]
        acc1 = acc2
        l_gm = (sum(abs(c) for c in coeff) - sum(c * cos for c, cos in zip(coeff, llist))) / len(names)
        for i, m in enumerate(names):
            for p in model.encoders[m].parameters():
                p.grad *= coeff[i] * rho
        used.append({n: p.grad.clone() for n, p in model.named_parameters()})
        cls_optimizer.step()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(rest, clip)
        used[-1].update({n: p.grad.clone() for n, p in model.named_parameters() if not n.startswith("unimodal_heads")})
        optimizer.step()
    return used, coeff


def our_steps(model, method, batches, lr):
    optimizer = torch.optim.SGD(method.param_groups(model), lr=lr)
    used, logs = [], []
    for index, (inputs, labels) in enumerate(batches):
        step = Step(model, model, optimizer, Precision("off", torch.device("cpu")), inputs, labels, 1, index)
        _, logged = method.train_step(step)
        used.append({n: p.grad.clone() for n, p in model.named_parameters()})
        logs.append(dict(logged))
    return used, logs


@pytest.mark.parametrize("modalities,flags", [(AUDIO_VISUAL, []), (AUDIO_VISUAL, ["--cggm_clip", "0"]),
                                              (AUDIO_VISUAL, ["--cggm_clamp", "1.5"]), (THREE, [])])
def test_three_steps_are_the_authors_update(modalities, flags):
    args = method_args("cggm", "--cggm_lambda", "0.5", *flags, modalities=modalities)
    method = build(args, modalities)
    model = tiny_classifier(4, modalities=modalities)
    method.configure_model(model)
    with torch.no_grad():  # aux head i predicts class i whatever its input: accuracies set by the labels below
        for i, head in enumerate(model.unimodal_heads.values()):
            head.weight.mul_(0.01)
            head.bias.copy_(5.0 * F.one_hot(torch.tensor(i), 4))
    reference = copy.deepcopy(model)
    # label sets whose accuracy gains give distinct coefficients, some negative, none near a blow-up
    labels = [(0, 1, 1, 3, 3, 3, 3, 3), (0, 0, 0, 0, 2, 2, 2, 2), (0, 0, 1, 2, 3, 3, 3, 3)]
    batches = [(tiny_batch(8, seed, modalities)[0], torch.tensor(y)) for seed, y in zip((3, 4, 5), labels)]
    ours, logs = our_steps(model, method, batches, lr=0.05)
    theirs, last_coeff = their_steps(reference, batches, 0.05, args.cggm_cls_lr, args.cggm_cls_weight_decay,
                                     args.cggm_rho, args.cggm_lambda, args.cggm_clip, args.cggm_clamp)
    tags = [m.tag for m in modalities]
    coeffs = [[log[f"cggm_coeff_{t}"] for t in tags] for log in logs]
    assert coeffs[-1] == pytest.approx(last_coeff)
    # the test can tell the modalities apart: their coefficients differ in every step
    assert all(len({round(c, 6) for c in step}) == len(tags) for step in coeffs), coeffs
    assert "cggm_l_gm" not in logs[0] and all("cggm_l_gm" in log for log in logs[1:])
    for mine, want in zip(ours, theirs):
        for name, grad in want.items():
            torch.testing.assert_close(mine[name], grad, rtol=1e-4, atol=1e-6, msg=name)
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6, msg=name)


def test_aux_heads_learn_from_detached_features_only():
    """With equal accuracies the first step's coefficients are 1/2 each; times rho 2, lambda 0 and no clip, the
    encoders' gradients are those of CE(z) alone: the aux losses reach only their heads."""
    args = method_args("cggm", "--cggm_rho", "2", "--cggm_lambda", "0", "--cggm_clip", "0")
    method = build(args)
    model = tiny_classifier(3)
    method.configure_model(model)
    with torch.no_grad():
        for head in model.unimodal_heads.values():
            head.weight.mul_(0.01)
            head.bias.copy_(torch.tensor([5.0, 0.0, 0.0]))  # both predict class 0: equal accuracies
    inputs, labels = tiny_batch(6)
    plain = copy.deepcopy(model)
    our_steps(model, method, [(inputs, labels)], lr=0.0)
    F.cross_entropy(plain(inputs).logits, labels).backward()
    for (name, p), q in zip(model.named_parameters(), plain.parameters()):
        if name.startswith("encoders."):
            torch.testing.assert_close(p.grad, q.grad, msg=name)
    assert all(p.grad.norm() > 0 for p in model.unimodal_heads.parameters())


def test_cggm_resumes_exactly_between_and_inside_epochs(demo_root, tmp_path, monkeypatch):
    """acc_m(t - 1) and the previous step's l_gm carry over steps and epochs: 2 epochs straight equal 1 epoch, a
    resume stopped by SIGTERM after the second epoch's first step, and a resume for the rest."""
    flags = ["--train", "--data_root", str(demo_root), "--method", "cggm", *TINY_FLAGS, "--learning_rate", "0.001",
             "--cggm_lambda", "0.5", "--lr_decay_step", "1"]
    straight, resumed = straight_and_resumed(main_CD.main, flags, tmp_path, monkeypatch)
    row = straight[-1]
    # StepLR decays the model's rate, not the aux heads' (their aux optimizer has no scheduler)
    assert row["lr_cggm_heads"] == pytest.approx(5e-4) and row["lr"] == pytest.approx(0.0001)
    assert math.isfinite(row["train_cggm_l_gm"]) and math.isfinite(row["train_cggm_coeff_v"])
    assert_same_numbers(row, resumed[-1])


@pytest.mark.parametrize("flag,value", [("--cggm_rho", "-1"), ("--cggm_clamp", "0"), ("--cggm_cls_lr", "0"),
                                        ("--cggm_clip", "-0.5")])
def test_bad_flags_are_one_error_line(flag, value, capsys):
    with pytest.raises(SystemExit) as exit_:
        main_CD.main(["--train", "--method", "cggm", flag, value])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and flag in err
    assert len([line for line in err.splitlines() if "error" in line]) == 1, err
