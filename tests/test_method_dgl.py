"""DGL (utils/methods/dgl.py): one training step against the authors' computation written out here (their
ConcatFusion_DGL / SumFusion_DGL slices and two backward passes), on concat and sum, with MMCosine and on
three modalities; the bias option, the clipping, the refused fusions, bad flags and a bf16 autocast step (DGL and ARL).
(torchrun: tests/test_distributed.py)."""

import pytest
import torch
import torch.nn.functional as F

import main_CD
from conftest import TINY_FLAGS
from dataset.errors import DataError
from dataset.modalities import AUDIO_VISUAL
from helpers.tiny_models import THREE, build, method_args, tiny_batch, tiny_classifier
from utils.methods.step import Step
from utils.precision import Precision

D = 512  # the encoders' feature width


def setup(flags=(), fusion="concat", mmcosine=False, modalities=AUDIO_VISUAL):
    model = tiny_classifier(3, fusion, mmcosine=mmcosine, modalities=modalities)
    method = build(method_args("dgl", *flags, modalities=modalities), modalities)
    method.configure_model(model)
    return model, method, *tiny_batch(6, modalities=modalities)


def method_grads(model, method, inputs, labels):
    """The gradients the method's step leaves (learning rate 0: the weights stay) and what it logged."""
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.0)
    step = Step(model, model, optimizer, Precision("off", torch.device("cpu")), inputs, labels, 1, 0)
    _, logged = method.train_step(step)
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}, logged


def authors_grads(model, inputs, labels, alpha=4.0, clip=40.0, split_bias=False):
    """Their step: z = head(detached features); z_m = the head on [.., f_m, ..] with the others zeroed (concat) or
    fc_m(f_m) (sum); backward alpha * sum CE(z_m), drop the head's gradients, backward CE(z), clip the norm."""
    model.zero_grad()
    enc = model.encode(inputs)
    names = list(enc)
    fusion = model.fusion
    if model.mmcosine:  # s cos(f_m, W_m) per modality; the head's blocks are W_m
        blocks = fusion.fc_out.weight.split(D, dim=1) if model.fusion_name == "concat" else \
            [fusion.fc[m].weight for m in names]
        cos = lambda f, w: 10.0 * F.normalize(f, dim=1) @ F.normalize(w, dim=1).t()  # noqa: E731
        fused = sum(cos(enc[m].detach(), w) for m, w in zip(names, blocks))
        unimodal = {m: cos(enc[m], w) for m, w in zip(names, blocks)}
    elif model.fusion_name == "concat":
        fc = fusion.fc_out
        fused = fc(torch.cat([enc[m].detach() for m in names], 1))
        bias = fc.bias / len(names) if split_bias else fc.bias
        unimodal = {m: F.linear(torch.cat([enc[k] if k == m else torch.zeros_like(enc[k]) for k in names], 1),
                                fc.weight, bias) for m in names}
    else:
        fused = sum(fusion.fc[m](enc[m].detach()) for m in names)
        unimodal = {m: fusion.fc[m](enc[m]) for m in names}
    (alpha * sum(F.cross_entropy(unimodal[m], labels) for m in names)).backward(retain_graph=True)
    for p in fusion.parameters():
        p.grad = None
    F.cross_entropy(fused, labels).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    norm = torch.stack([g.norm() for g in grads.values()]).norm()
    coefficient = min(1.0, clip / (norm.item() + 1e-6)) if clip > 0 else 1.0
    losses = {m: F.cross_entropy(unimodal[m], labels).item() for m in names}
    return {n: g * coefficient for n, g in grads.items()}, losses, norm.item()


def assert_same(mine, theirs):
    assert mine.keys() == theirs.keys()
    for name, grad in theirs.items():
        assert grad.abs().sum() > 0, name  # every parameter learns from something
        # atol: a conv bias before BatchNorm has a gradient of rounding noise (~1e-7)
        assert torch.allclose(mine[name], grad, rtol=1e-4, atol=1e-6), name


@pytest.mark.parametrize("fusion,mmcosine,modalities", [("concat", False, AUDIO_VISUAL), ("sum", False, AUDIO_VISUAL),
                                                        ("concat", True, AUDIO_VISUAL), ("sum", True, AUDIO_VISUAL),
                                                        ("concat", False, THREE)], ids=["concat", "sum",
                                                        "concat-mmcosine", "sum-mmcosine", "concat-three"])
def test_step_is_the_authors_two_backward_passes(fusion, mmcosine, modalities):
    model, method, inputs, labels = setup(fusion=fusion, mmcosine=mmcosine, modalities=modalities)
    theirs, losses, norm = authors_grads(model, inputs, labels)
    mine, logged = method_grads(model, method, inputs, labels)
    assert_same(mine, theirs)
    assert logged == pytest.approx({**{f"dgl_loss_{m.tag}": losses[m.name] for m in modalities},
                                    "dgl_grad_norm": norm}, rel=1e-5)


def test_alpha_weighs_only_the_encoders_and_the_split_bias_is_the_projects():
    model, method, inputs, labels = setup(["--dgl_alpha", "2.5", "--dgl_bias", "split"])
    theirs, _, _ = authors_grads(model, inputs, labels, alpha=2.5, split_bias=True)
    assert_same(method_grads(model, method, inputs, labels)[0], theirs)
    full, _, _ = authors_grads(model, inputs, labels, alpha=2.5)
    assert not torch.allclose(full["encoders.audio.trunk.0.weight"], theirs["encoders.audio.trunk.0.weight"])
    assert torch.equal(full["fusion.fc_out.weight"], theirs["fusion.fc_out.weight"])  # the head: CE(z) alone


@pytest.mark.parametrize("clip", [0.01, 0.0])
def test_gradient_norm_is_clipped_or_not(clip):
    model, method, inputs, labels = setup(["--dgl_clip", str(clip)])
    theirs, _, norm = authors_grads(model, inputs, labels, clip=clip)
    assert norm > 0.01  # the clip bites at 0.01
    assert_same(method_grads(model, method, inputs, labels)[0], theirs)


@pytest.mark.parametrize("fusion", ["film", "gated"])
def test_pairwise_fusions_are_refused(fusion):
    model = tiny_classifier(3, fusion)
    with pytest.raises(DataError, match="concat or sum"):
        build(method_args("dgl")).configure_model(model)


@pytest.mark.parametrize("flags,message", [(["--fusion_method", "gated"], "use --fusion_method concat or sum"),
                                           (["--dgl_alpha", "-1"], "--dgl_alpha"),
                                           (["--dgl_bias", "half"], "--dgl_bias")])
def test_bad_flags_are_one_error_line(flags, message, demo_root, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main_CD.main(["--train", "--data_root", str(demo_root), "--run_dir", str(tmp_path / "run"), "--epochs", "1",
                      "--method", "dgl", *TINY_FLAGS, *flags])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert exit_info.value.code == 2 and message in err[-1] and "error:" in err[-1]
    assert len([line for line in err if "error" in line]) == 1, err


@pytest.mark.parametrize("name,flags", [("dgl", []), ("arl", ["--arl_start", "-1"])])
def test_a_bf16_autocast_step_logs_what_float32_does(name, flags):
    """The heads run outside autocast on the step's bf16 features (in float32)."""
    logged = {}
    for amp in ("bf16", "off"):
        model = tiny_classifier(3, "concat")
        method = build(method_args(name, "--amp", amp, *flags))
        method.configure_model(model)
        inputs, labels = tiny_batch(6)
        optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01)
        step = Step(model, model, optimizer, Precision(amp, torch.device("cpu")), inputs, labels, 1, 0)
        logged[amp] = method.train_step(step)[1]
    assert logged["bf16"] == pytest.approx(logged["off"], rel=2e-2)
