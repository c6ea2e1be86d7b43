"""MLA, ReconBoost, AMCo and LFM: each mechanism against a direct computation, on two modalities (audio-visual)
and on three (tiny_models.THREE: x, y, z)."""
import copy
import math
from itertools import combinations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dataset.errors import DataError
from dataset.modalities import AUDIO_VISUAL
from helpers.tiny_models import THREE, build, method_args, tiny_batch, tiny_classifier
from models.heads import EntropyWeighted
from utils.methods.amco import block_masses, class_mask, mask_ratio
from utils.methods.base import encoder_params
from utils.methods.lfm import alpha_gradient, divergence, fitted_weights, lfm_losses
from utils.methods.mla import project_gradient
from utils.methods.reconboost import boosting_loss
from utils.methods.step import Step
from utils.precision import Precision
from utils.seed import sample_seed

AV = AUDIO_VISUAL


def names(modalities):
    return [m.name for m in modalities]


def args_of(method, *flags, mmcosine=False, modalities=AV):
    args = method_args(method, *flags, modalities=modalities)
    args.fusion_method, args.mmcosine, args.scaling = "concat", mmcosine, 10.0
    return args


def model_with(method, *flags, mmcosine=False, classes=3, modalities=AV):
    model = tiny_classifier(classes, "concat", mmcosine=mmcosine, modalities=modalities)
    method = build(args_of(method, *flags, mmcosine=mmcosine, modalities=modalities), modalities)
    method.configure_model(model)
    return model, method


def batch(n=4, classes=3, modalities=AV):
    """({name: input}, labels cycling over `classes`)."""
    inputs, _ = tiny_batch(n, seed=3, modalities=modalities)
    return inputs, torch.arange(n) % classes


def step_of(model, epoch=1, index=0, lr=0.5, modalities=AV, n=4, classes=3):
    inputs, labels = batch(n, classes, modalities)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr)
    return Step(model, model, optimizer, Precision("off", torch.device("cpu")), inputs, labels, epoch, index, 2)


def sgd(params, loss, lr=0.5):
    """One plain SGD step on `params` from `loss`, by hand."""
    grads = torch.autograd.grad(loss, params, retain_graph=True)
    with torch.no_grad():
        for p, g in zip(params, grads):
            p -= lr * g


def assert_same_params(model, ref, atol=1e-6):
    for (name, p), q in zip(model.named_parameters(), ref.parameters()):
        assert torch.allclose(p, q, atol=atol), name


# ---- MLA
@pytest.mark.parametrize("modalities", [AV, THREE], ids=["av", "three"])
def test_mla_steps_through_one_shared_head_one_modality_after_the_other(modalities):
    """Audio then visual (x, y, then z for three, as the authors' --modal3 loop): each step through the head the
    steps before it have moved, from one forward of the encoders."""
    model, method = model_with("mla", modalities=modalities)
    assert model.fusion.fc_out.weight.shape == (3, 512)  # one head for every modality's features
    ref = copy.deepcopy(model)
    _, logged = method.train_step(step_of(model, modalities=modalities))
    inputs, labels = batch(modalities=modalities)
    enc = {m: ref.encoders[m](inputs[m]) for m in names(modalities)}  # one forward, as the authors
    head = list(ref.fusion.parameters())
    for m in names(modalities):
        loss = F.cross_entropy(ref.fusion.fc_out(enc[m]), labels)
        assert logged[f"mla_loss_{m}"] == pytest.approx(loss.item(), rel=1e-5)
        sgd(encoder_params(ref, m) + head, loss)  # the head as the previous steps left it
    assert_same_params(model, ref)


def entropy(p):
    return -(p * p.log()).sum(1)


def test_mla_entropy_fusion_per_sample_per_batch_and_fixed():
    g = torch.Generator().manual_seed(0)
    za, zv = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g) * 3
    h_a, h_v = entropy(za.softmax(1)), entropy(zv.softmax(1))
    top = torch.maximum(h_a, h_v)
    w_a = torch.exp(top - h_a) / (torch.exp(top - h_a) + torch.exp(top - h_v))
    fused = EntropyWeighted(4, "sample")({"audio": za, "visual": zv}, None)[1]
    assert torch.allclose(fused, w_a[:, None] * za + (1 - w_a[:, None]) * zv, atol=1e-6)
    # the authors' calculate_entropy: softmax over dim 0, one sum over the whole batch
    ea, ev = -torch.sum(za.softmax(0) * za.softmax(0).log()), -torch.sum(zv.softmax(0) * zv.softmax(0).log())
    top = max(ea, ev)
    wa = torch.exp(top - ea) / (torch.exp(top - ea) + torch.exp(top - ev))
    assert torch.allclose(EntropyWeighted(4, "batch")({"audio": za, "visual": zv}, None)[1], wa * za + (1 - wa) * zv,
                          atol=1e-6)
    fixed = EntropyWeighted(4, "fixed", 0.55)({"audio": za, "visual": zv}, None)[1]
    assert torch.allclose(fixed, 0.55 * za + 0.45 * zv)


def test_mla_entropy_fusion_of_three_modalities_is_the_authors_gating():
    """Their calculate_gating_weights3 (batch) and the per-sample weights of the paper, for three modalities."""
    g = torch.Generator().manual_seed(5)
    z = {m: torch.randn(6, 4, generator=g) * s for m, s in (("x", 1.0), ("y", 3.0), ("z", 0.5))}
    batch_h = {m: -torch.sum(v.softmax(0) * v.softmax(0).log()) for m, v in z.items()}
    top = max(batch_h.values())
    gate = {m: torch.exp(top - h) for m, h in batch_h.items()}
    expected = sum(z[m] * gate[m] / sum(gate.values()) for m in z)
    assert torch.allclose(EntropyWeighted(4, "batch")(z, None)[1], expected, atol=1e-6)
    sample_h = {m: entropy(v.softmax(1)) for m, v in z.items()}
    top = torch.stack(list(sample_h.values())).max(0).values
    gate = {m: torch.exp(top - h)[:, None] for m, h in sample_h.items()}
    expected = sum(z[m] * gate[m] / sum(gate.values()) for m in z)
    assert torch.allclose(EntropyWeighted(4, "sample")(z, None)[1], expected, atol=1e-6)


def test_mla_fixed_weight_is_named_after_the_first_modality():
    model, method = model_with("mla", "--mla_fusion", "fixed", "--mla_audio_weight", "0.7")
    assert model.head_spec["combine"] == {"name": "entropy", "mode": "fixed", "audio_weight": 0.7}
    model.eval()
    inputs, _ = batch()
    with torch.no_grad():
        out = model(inputs)
    assert torch.allclose(out.logits, 0.7 * out.unimodal["audio"] + 0.3 * out.unimodal["visual"], atol=1e-6)
    assert args_of("mla", "--mla_x_weight", "0.3", modalities=THREE).mla_x_weight == 0.3
    with pytest.raises(SystemExit):
        args_of("mla", "--mla_audio_weight", "0.3", modalities=THREE)  # no audio on that script


def test_mla_refuses_a_fixed_fusion_of_three_modalities():
    with pytest.raises(DataError, match="--mla_fusion fixed weighs two modalities .*--mla_x_weight.* has 3"):
        build(args_of("mla", "--mla_fusion", "fixed", modalities=THREE), THREE)


class AuthorsGSPlugin:
    """GSPlugin.before_update of the MLA code (utils/utils.py) and of BalanceBenchmark (MLA_trainer.py), transcribed
    into numpy (float64) for the head's weight, its name check passed; `add`: BalanceBenchmark's grad.add_."""

    def __init__(self, d=512):
        self.Pl, self.exp_count = np.eye(d), 0

    def before_update(self, grad, before_batch_input, batch_index, len_dataloader, train_exp_counter, add):
        lamda = batch_index / len_dataloader + 1
        alpha = 1.0 * 0.1 ** lamda
        if train_exp_counter != 0:
            r = np.mean(before_batch_input, 0, keepdims=True)                  # torch.mean(x, 0, True): (1, d)
            k = self.Pl @ r.T                                                  # torch.mm(Pl, r^T): (d, 1)
            self.Pl = self.Pl - (k @ k.T) / (alpha + k @ r)                    # torch.mm(k, r): (d, d)
            self.Pl = self.Pl / np.linalg.norm(self.Pl, "fro")
            grad = grad + grad @ self.Pl.T if add else grad @ self.Pl.T
        return grad


@pytest.mark.parametrize("mode", ["replace", "add"])
def test_mla_projection_is_the_gs_plugin_update(mode):
    model, method = model_with("mla", "--mla_projection", mode)
    model.double()  # their element-wise rule divides by a + k_i r_j, which comes near 0 (ill-conditioned in float32)
    weight = model.fusion.fc_out.weight
    theirs = AuthorsGSPlugin()
    g = torch.Generator().manual_seed(1)
    for update, index in enumerate([0, 1, 0, 1]):  # batch i of 2 gives a = 0.1^(1 + i / 2)
        grad = torch.randn(3, 512, generator=g, dtype=torch.float64)
        feats = torch.rand(4, 512, generator=g, dtype=torch.float64)  # pooled ReLU features are non-negative
        grads = {weight: grad.clone()}
        method.project(grads, weight, feats, step_of(model, index=index))
        expected = theirs.before_update(grad.numpy(), feats.numpy(), index, 2, theirs.exp_count,
                                        mode == "add")
        theirs.exp_count += 1  # as their train loop, after each update
        if update == 0:  # the very first update is left alone
            assert torch.equal(grads[weight], grad)
            continue
        assert np.allclose(grads[weight].numpy(), expected, rtol=1e-6, atol=1e-12), update
        assert np.allclose(method.projector.numpy(), theirs.Pl, rtol=1e-6, atol=1e-12), update
    fresh = AuthorsGSPlugin()
    expected = fresh.before_update(grad.numpy(), feats.numpy(), 1, 2, 1, mode == "add")
    projector, projected = project_gradient(torch.eye(512, dtype=torch.float64), feats.mean(0, keepdim=True), grad,
                                            0.1 ** 1.5, mode)
    assert np.allclose(projected.numpy(), expected, rtol=1e-6) and np.allclose(projector.numpy(), fresh.Pl, rtol=1e-6)


def test_mla_projects_the_visual_step_with_the_visual_features():
    """In a train step the audio update is the plugin's very first (left alone); the visual one is projected from
    the identity with the visual batch's mean feature."""
    model, method = model_with("mla", "--mla_projection", "replace")
    ref = copy.deepcopy(model)
    method.train_step(step_of(model))  # batch 0 of 2: a = 0.1
    inputs, labels = batch()
    enc_a, enc_v = ref.encoders["audio"](inputs["audio"]), ref.encoders["visual"](inputs["visual"])
    head = list(ref.fusion.parameters())
    sgd(encoder_params(ref, "audio") + head, F.cross_entropy(ref.fusion.fc_out(enc_a), labels))
    params = encoder_params(ref, "visual") + head
    grads = torch.autograd.grad(F.cross_entropy(ref.fusion.fc_out(enc_v), labels), params)
    theirs = AuthorsGSPlugin()
    projected = theirs.before_update(grads[-2].double().numpy(), enc_v.detach().double().numpy(), 0, 2, 1, False)
    assert params[-2] is ref.fusion.fc_out.weight
    with torch.no_grad():
        for p, g in zip(params, grads[:-2] + (torch.from_numpy(projected).float(), grads[-1])):
            p -= 0.5 * g
    assert_same_params(model, ref, atol=1e-5)


def test_mla_refuses_other_fusions():
    with pytest.raises(DataError, match="--fusion_method concat"):
        build(args_of("mla")).configure_model(tiny_classifier(3, "gated"))


# ---- ReconBoost
def test_reconboost_plan_stages_phases_and_members():
    method = build(args_of("reconboost"))
    plan = [method.stage_of(e) for e in range(1, 18)]
    assert [p[1:3] for p in plan[:8]] == [("audio", "modality")] * 4 + [("audio", "rectify")] * 4
    assert [p[1:3] for p in plan[8:16]] == [("visual", "modality")] * 4 + [("visual", "rectify")] * 4
    assert [e + 1 for e, p in enumerate(plan) if p[3]] == [1, 5, 9, 13, 17]  # fresh optimizer state here
    assert method.members(0, False) == [] and method.members(0, True) == ["audio"]
    assert method.members(1, False) == ["audio"] and method.members(1, True) == ["audio", "visual"]
    pretrained = build(args_of("reconboost", "--visual_pretrain", "v.pt"))
    assert pretrained.members(0, False) == ["visual"]


def test_reconboost_plan_cycles_through_three_modalities():
    """Their fixed schedule for three (train_MSA.py: stage s trains modality s mod 3), each joining the ensemble
    after its first stage, or from the start when pretrained."""
    model, method = model_with("reconboost", "--reconboost_stage_epochs", "1", "--reconboost_rectify_epochs", "1",
                               modalities=THREE)
    assert [method.stage_of(e)[1:3] for e in range(1, 9)] == [
        ("x", "modality"), ("x", "rectify"), ("y", "modality"), ("y", "rectify"), ("z", "modality"),
        ("z", "rectify"), ("x", "modality"), ("x", "rectify")]
    assert [method.members(s, False) for s in range(4)] == [[], ["x"], ["x", "y"], ["x", "y", "z"]]
    assert [method.members(s, True) for s in range(3)] == [["x"], ["x", "y"], ["x", "y", "z"]]
    pretrained = build(args_of("reconboost", "--z_pretrain", "z.pt", modalities=THREE), THREE)
    assert pretrained.members(0, False) == ["z"] and pretrained.members(1, False) == ["x", "z"]
    logged = method.start_epoch(3, model, torch.optim.SGD(model.parameters(), lr=1))
    assert logged == {"reconboost_stage": 1.0, "reconboost_rectify": 0.0, "reconboost_trains_x": 0.0}


def test_boosting_loss_is_the_authors_formula():
    g = torch.Generator().manual_seed(2)
    logits, ensemble, labels = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g), torch.tensor([0, 2, 1, 1])
    log_p, weight = logits.log_softmax(1), ensemble.softmax(1)
    expected = sum(-5 * log_p[i, labels[i]] / 3 + 1 * weight[i, labels[i]] * log_p[i, labels[i]] / 3 for i in range(4)) / 4
    assert boosting_loss(logits, ensemble, labels, 5.0, 1.0).item() == pytest.approx(expected.item(), rel=1e-6)
    # no member yet: their constant ensemble, softmax 1, leaves (w1 - w2) CE / C
    ce = F.cross_entropy(logits, labels)
    assert boosting_loss(logits, None, labels, 5.0, 1.0).item() == pytest.approx(4 * ce.item() / 3, rel=1e-6)


@pytest.mark.parametrize("alignment", ["detached", "gradient"])
def test_reconboost_stage_trains_one_encoder_and_the_head_against_the_others(alignment):
    model, method = model_with("reconboost", "--reconboost_alignment", alignment)
    assert model.fusion.hidden.out_features == 256 and model.combiner.boost_rate.item() == 1.0
    ref = copy.deepcopy(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    method.start_epoch(9, model, optimizer)  # stage 1: visual, with the audio member
    step = step_of(model, epoch=9)
    method.train_step(step)
    inputs, labels = batch()
    enc_v = ref.encoders["visual"](inputs["visual"])
    with torch.no_grad():
        z_a = ref.head({"audio": ref.encoders["audio"](inputs["audio"]), "visual": enc_v.detach()}).unimodal["audio"]
    z_v = ref.head({"audio": torch.zeros_like(enc_v), "visual": enc_v}).unimodal["visual"]
    loss = boosting_loss(z_v, ref.combiner.boost_rate.detach() * z_a, labels, 5.0, 1.0)
    if alignment == "gradient":
        loss = loss + 0.5 * F.mse_loss(z_v.softmax(1), z_a.softmax(1))
    sgd(encoder_params(ref, "visual") + list(ref.fusion.parameters()), loss)
    assert_same_params(model, ref)
    assert model.combiner.boost_rate.item() == 1.0  # beta learns only in rectification
    trained_audio = encoder_params(model, "audio")
    assert all(torch.equal(p, q) for p, q in zip(trained_audio, encoder_params(ref, "audio")))


def test_reconboost_third_stage_boosts_against_both_members_and_aligns_with_the_previous():
    """Stage 2 of three trains z against E = beta (z_x + z_y), its alignment term pulling toward z_y, the modality
    of the stage before (their pre_model); x's and y's encoders stay as they were."""
    model, method = model_with("reconboost", "--reconboost_alignment", "gradient", modalities=THREE)
    with torch.no_grad():
        model.combiner.boost_rate.fill_(0.7)
    ref = copy.deepcopy(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    method.start_epoch(17, model, optimizer)  # stages of 4 + 4 epochs: stage 2 (z) begins at epoch 17
    _, logged = method.train_step(step_of(model, epoch=17, modalities=THREE))
    inputs, labels = batch(modalities=THREE)
    enc_z = ref.encoders["z"](inputs["z"])
    with torch.no_grad():
        members = {m: ref.encoders[m](inputs[m]) for m in ("x", "y")}
        z = ref.head({**members, "z": enc_z.detach()}).unimodal
    z_z = ref.head({"x": torch.zeros_like(enc_z), "y": torch.zeros_like(enc_z), "z": enc_z}).unimodal["z"]
    align = F.mse_loss(z_z.softmax(1), z["y"].softmax(1))
    loss = boosting_loss(z_z, 0.7 * (z["x"] + z["y"]), labels, 5.0, 1.0) + 0.5 * align
    assert logged["reconboost_align"] == pytest.approx(align.item(), rel=1e-5)
    sgd(encoder_params(ref, "z") + list(ref.fusion.parameters()), loss)
    assert_same_params(model, ref)
    for m in ("x", "y"):
        assert all(torch.equal(p, q) for p, q in zip(encoder_params(model, m), encoder_params(ref, m)))


def test_reconboost_rectification_trains_the_members_and_beta():
    model, method = model_with("reconboost")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    optimizer.state[model.combiner.boost_rate]["momentum_buffer"] = torch.tensor(9.0)
    method.start_epoch(5, model, optimizer)  # stage 0 rectification: only audio is a member
    assert not optimizer.state  # the phase starts from fresh optimizer state
    visual_before = [p.clone() for p in encoder_params(model, "visual")]
    ref = copy.deepcopy(model)
    method.train_step(step_of(model, epoch=5))
    inputs, labels = batch()
    out = ref.head({"audio": ref.encoders["audio"](inputs["audio"]), "visual": torch.zeros(4, 512)})
    sgd(encoder_params(ref, "audio") + list(ref.fusion.parameters()) + [ref.combiner.boost_rate],
        F.cross_entropy(ref.combiner.boost_rate * out.unimodal["audio"], labels))
    assert_same_params(model, ref)
    assert all(torch.equal(p, q) for p, q in zip(encoder_params(model, "visual"), visual_before))


def test_reconboost_rectification_of_three_members():
    model, method = model_with("reconboost", modalities=THREE)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    method.start_epoch(13, model, optimizer)  # stage 1 (y) rectification: x and y are members, z is not
    z_before = [p.clone() for p in encoder_params(model, "z")]
    ref = copy.deepcopy(model)
    method.train_step(step_of(model, epoch=13, modalities=THREE))
    inputs, labels = batch(modalities=THREE)
    out = ref.head({"x": ref.encoders["x"](inputs["x"]), "y": ref.encoders["y"](inputs["y"]), "z": torch.zeros(4, 512)})
    sgd(encoder_params(ref, "x") + encoder_params(ref, "y") + list(ref.fusion.parameters()) + [ref.combiner.boost_rate],
        F.cross_entropy(ref.combiner.boost_rate * (out.unimodal["x"] + out.unimodal["y"]), labels))
    assert_same_params(model, ref)
    assert all(torch.equal(p, q) for p, q in zip(encoder_params(model, "z"), z_before))


@pytest.mark.parametrize("pretrained", [[], ["--visual_pretrain", "v.pt"]])
def test_reconboost_predicts_with_the_modalities_trained_so_far(pretrained):
    """Their ensemble holds a modality once its stage has run (or from the start when pretrained): before visual's
    first stage the prediction is beta z_a, whatever the frames; from then on beta (z_a + z_v)."""
    model, method = model_with("reconboost", *pretrained)
    with torch.no_grad():
        model.combiner.boost_rate.fill_(1.5)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    inputs, _ = batch()
    other = {**inputs, "visual": torch.randn_like(inputs["visual"])}
    model.eval()
    for epoch in (1, 5, 9):  # stage 0: audio, then its rectification; stage 1: visual
        method.start_epoch(epoch, model, optimizer)
        with torch.no_grad():
            out, changed = model(inputs), model(other)
        visual_scored = epoch >= 9 or bool(pretrained)
        expected = 1.5 * (out.unimodal["audio"] + out.unimodal["visual"]) if visual_scored \
            else 1.5 * out.unimodal["audio"]
        assert torch.allclose(out.logits, expected, atol=1e-6), epoch
        assert torch.equal(out.logits, changed.logits) != visual_scored, epoch  # only a member's input counts
    method.start_epoch(2, model, optimizer)
    fresh = tiny_classifier(3, "concat")
    fresh.set_head(model.head_spec)
    fresh.load_state_dict(model.state_dict())  # a checkpoint keeps which modalities its prediction sums
    assert torch.equal(fresh.combiner.members, torch.tensor([1.0, float(bool(pretrained))]))
    older = {k: v for k, v in model.state_dict().items() if k != "combiner.members"}
    fresh.load_state_dict(older)  # written before the members were kept: every modality, as it was scored then
    assert torch.equal(fresh.combiner.members, torch.ones(2))


def test_reconboost_predicts_with_the_three_modalities_as_they_join():
    model, method = model_with("reconboost", modalities=THREE)
    with torch.no_grad():
        model.combiner.boost_rate.fill_(1.5)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    inputs, _ = batch(modalities=THREE)
    model.eval()
    for epoch, scored in ((1, ["x"]), (9, ["x", "y"]), (17, ["x", "y", "z"]), (25, ["x", "y", "z"])):
        method.start_epoch(epoch, model, optimizer)
        assert model.combiner.members.tolist() == [float(m in scored) for m in ("x", "y", "z")], epoch
        with torch.no_grad():
            out = model(inputs)
        assert torch.allclose(out.logits, 1.5 * sum(out.unimodal[m] for m in scored), atol=1e-6), epoch


# ---- AMCo
def test_amco_mask_ratio_and_masks():
    progress = [0.0, 0.1, 0.2, 0.3, 0.4]  # their l_t in the second epoch: + 1/10 per step
    assert [round(mask_ratio(p, 0.3), 4) for p in progress] == [0.0, 0.5, 0.866, 1.0, 1.0]
    mask = class_mask(6, 4, torch.Generator().manual_seed(0))
    assert mask.sum().item() == 2 and set(mask.tolist()) == {0.0, 1.0}


@pytest.mark.parametrize("modalities,dependent", [(AV, "audio"), (THREE, "y")], ids=["av", "three"])
def test_amco_masks_the_dependent_modality_and_learns_which_one_is(modalities, dependent):
    model, method = model_with("amco", classes=6, modalities=modalities)
    method.dependent = {m: m == dependent for m in names(modalities)}
    method.progress = 0.2
    ref = copy.deepcopy(model)
    inputs, labels = batch(6, 6, modalities)
    step = Step(model, model, torch.optim.SGD(model.parameters(), lr=0.5), Precision("off", torch.device("cpu")),
                inputs, labels, 2, 3, 10)
    out, logged = method.train_step(step)
    assert logged["amco_mask_ratio"] == pytest.approx(math.sin(math.pi / 2 * 0.2 / 0.3))
    assert method.progress == pytest.approx(0.3)  # + epoch / 10, 0-based
    mask = class_mask(6, int(logged["amco_mask_ratio"] * 6), torch.Generator().manual_seed(sample_seed(0, 2, 3)))
    plain = ref(inputs)
    z = {m: plain.unimodal[m] * mask if m == dependent else plain.unimodal[m] for m in names(modalities)}
    fused = ref.combiner.linear(sum(z.values()))
    assert torch.allclose(out.unimodal[dependent], z[dependent], atol=1e-6)
    sgd(list(ref.parameters()), F.cross_entropy(fused, labels) + sum(F.cross_entropy(x, labels) for x in z.values()))
    assert_same_params(model, ref)
    masses = block_masses(*(out.unimodal[m] for m in names(modalities)))
    p = torch.cat([out.unimodal[m] for m in names(modalities)], 1).softmax(1)
    for i, (m, mass) in enumerate(zip(names(modalities), masses)):
        assert mass == pytest.approx(p[:, 6 * i:6 * (i + 1)].sum(1).mean().item()), m
        assert logged[f"amco_masked_{m}"] == float(m == dependent)
    assert sum(masses) == pytest.approx(1.0)
    # every mass but the last (1 minus the others) is logged
    assert [k for k in logged if k.startswith("amco_mass_")] == [f"amco_mass_{m}" for m in names(modalities)[:-1]]
    assert logged[f"amco_mass_{modalities[0].name}"] == pytest.approx(masses[0])
    assert method.dependent == {m: mass > 0.5 for m, mass in zip(names(modalities), masses)}
    model.eval()
    with torch.no_grad():
        evaluated = model(inputs)
    assert torch.allclose(evaluated.logits, model.combiner.linear(sum(evaluated.unimodal.values())), atol=1e-6)


# ---- LFM
def test_lfm_divergences():
    g = torch.Generator().manual_seed(4)
    za, zv = torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g)
    p, q = za.softmax(1), zv.softmax(1)
    m = (p + q) / 2

    def kl(a, b):
        return (a * (a / b).log()).sum(1).mean()
    assert divergence(za, zv).item() == pytest.approx((0.5 * (kl(m, p) + kl(m, q))).item(), rel=1e-5)
    assert divergence(za, zv, "js").item() == pytest.approx((0.5 * (kl(p, m) + kl(q, m))).item(), rel=1e-5)
    assert fitted_weights(0) == pytest.approx((0.204623704, 0.795376296))


def test_lfm_losses_of_three_modalities_average_the_pairs():
    """BalanceBenchmark's LFM for three: CE of the mean logits, the alignment averaged over the three pairs."""
    model = tiny_classifier(3, "sum", modalities=THREE)
    inputs, labels = batch(modalities=THREE)
    out = model(inputs)
    loss_cls, loss_al = lfm_losses(out, labels, "authors")
    z = out.unimodal
    assert loss_cls.item() == pytest.approx(F.cross_entropy((z["x"] + z["y"] + z["z"]) / 3, labels).item(), rel=1e-6)
    pairs = [divergence(z[a], z[b]) for a, b in combinations("xyz", 2)]
    assert loss_al.item() == pytest.approx((sum(pairs) / 3).item(), rel=1e-6)
    two, _ = batch()
    out = tiny_classifier(3, "sum")(two)
    loss_cls, loss_al = lfm_losses(out, labels, "js")  # two modalities: the authors' terms
    assert torch.equal(loss_cls, F.cross_entropy(0.5 * (out.unimodal["audio"] + out.unimodal["visual"]), labels))
    assert torch.equal(loss_al, divergence(out.unimodal["audio"], out.unimodal["visual"], "js"))


@pytest.mark.parametrize("modalities", [AV, THREE], ids=["av", "three"])
def test_lfm_hyper_gradient_is_the_hessian_vector_product(modalities):
    """Against forward-over-reverse differentiation (torch.func.jvp of the gradient), a different route to H c."""
    from torch.func import functional_call, grad, jvp
    model = tiny_classifier(3, "sum", modalities=modalities).eval()
    inputs, labels = batch(2, modalities=modalities)
    weights = (0.05, 0.95)
    value = alpha_gradient(model, inputs, labels, weights, "authors")
    params = dict(model.named_parameters())
    pairs = list(combinations(names(modalities), 2))

    def losses(p):
        z = functional_call(model, p, (inputs,)).unimodal
        return (F.cross_entropy(sum(z.values()) / len(z), labels),
                sum(divergence(z[a], z[b]) for a, b in pairs) / len(pairs))
    direction = grad(lambda p: losses(p)[0])(params)
    _, hvp = jvp(grad(lambda p: weights[0] * losses(p)[0] + weights[1] * losses(p)[1]), (params,), (direction,))
    first = next(iter(params))
    assert value == pytest.approx(hvp[first].mean().item(), rel=1e-3, abs=1e-8)


def clip_items(n, modalities=AV, inputs=None):
    """n clips as a dataset gives them: (x_1, ..., x_M, label) tuples."""
    given, labels = batch(n, modalities=modalities)
    inputs = given if inputs is None else inputs
    return [tuple(inputs[m.name][i] for m in modalities) + (labels[i],) for i in range(n)]


def passes_over(model, modalities=AV, batch_size=3):
    """A Method.forward_batches as the runner's: this process's share of the keys (every N-th under torchrun) through
    a DataLoader (which draws its seed from the global generator), eval mode, no gradient, each modality's tensors
    prepared by engine.to_device."""
    from torch.utils.data import DataLoader

    from utils import distributed
    from utils.engine import to_device

    @torch.no_grad()
    def forward_batches(dataset, keys):
        model.eval()
        mine = list(keys)[distributed.rank()::distributed.world_size()]
        for batch_ in DataLoader(dataset, batch_size=batch_size, sampler=mine):
            inputs, labels = to_device(batch_, modalities, torch.device("cpu"))
            yield model(inputs), labels
    return forward_batches


def prepared(modalities=AV):
    """A Method.prepare_batch as the runner's: a collated batch's tensors prepared on the device."""
    from utils.engine import to_device
    return lambda batch_: to_device(batch_, modalities, torch.device("cpu"))


def test_lfm_weight_update_clips_and_halves_its_step(monkeypatch):
    model = tiny_classifier(3, "concat")
    clips = clip_items(8)
    inputs, labels = batch(8)
    model.eval()
    first = {m: x[:4] for m, x in inputs.items()}
    g = alpha_gradient(model, first, labels[:4], (0.5, 0.5), "authors")  # the first half, eval mode
    model.train()
    assert abs(g) > 1e-12
    lr = 0.2 / abs(g)  # a step of 0.2: inside [0.05, 0.95] from 0.5 either way, so a flipped sign would show

    def lfm(lr_alpha):
        method = build(args_of("lfm", "--lfm_lr_alpha", str(lr_alpha)))
        method.batch_clips, method.weights = clips, (0.5, 0.5)
        method.prepare_batch = prepared()
        return method
    method = lfm(lr)
    rng = torch.random.get_rng_state()
    record = method.start_epoch(1, model, torch.optim.SGD(model.parameters(), lr=0.1))
    assert torch.equal(torch.random.get_rng_state(), rng)  # the update leaves the global generator alone
    assert record["lfm_alpha_align"] == pytest.approx(0.5 - lr * g, rel=1e-4)  # alpha_al - lr_alpha g
    assert record["lfm_alpha_cls"] == pytest.approx(0.5 + lr * g, rel=1e-4) and model.training
    from utils.methods import lfm as lfm_module
    monkeypatch.setattr(lfm_module, "alpha_gradient", lambda *a: g)  # the same batch and weights: the same g
    method.weights = (0.5, 0.5)
    record = method.start_epoch(21, model, None)  # their epoch 20: the step is halved
    assert record["lfm_lr_alpha"] == pytest.approx(lr / 2)
    assert record["lfm_alpha_align"] == pytest.approx(0.5 - lr / 2 * g, rel=1e-4)
    far = lfm(1000 * lr)  # a step far past the range: clipped to its edge on the side g points away from
    assert far.start_epoch(1, model, None)["lfm_alpha_align"] == (0.05 if g > 0 else 0.95)
    model, method = model_with("lfm")
    inputs, labels = batch()
    out = model(inputs)
    method.weights = (0.3, 0.7)
    expected = 2 * (0.3 * F.cross_entropy(0.5 * (out.unimodal["audio"] + out.unimodal["visual"]), labels)
                    + 0.7 * divergence(out.unimodal["audio"], out.unimodal["visual"]))
    assert method.loss(out, labels, 1).item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize("modalities", [AV, THREE], ids=["av", "three"])
def test_lfm_update_batch_is_the_held_out_clips_as_the_model_takes_them(modalities):
    """The update's batch: the first half of the held-out clips, each modality prepared as the runner's pass gives
    it (audio-visual: uint8 frames normalised, as the training batches are), on three modalities as on two."""
    from dataset.visual import frames_to_model_input
    model = tiny_classifier(3, "concat", modalities=modalities)
    stored, labels = batch(6, modalities=modalities)
    if modalities == AV:  # frames as the lossy cache stores them
        stored["visual"] = torch.randint(0, 256, stored["visual"].shape, dtype=torch.uint8,
                                         generator=torch.Generator().manual_seed(0))
    method = build(args_of("lfm", modalities=modalities), modalities)
    method.batch_clips = clip_items(6, modalities, stored)
    method.prepare_batch = prepared(modalities)
    inputs, got = method.update_batch(model)
    assert list(inputs) == names(modalities) and torch.equal(got, labels[:3])
    for m in names(modalities):
        want = frames_to_model_input(stored[m][:3]) if stored[m].dtype == torch.uint8 else stored[m][:3]
        assert inputs[m].dtype == torch.float32 and torch.equal(inputs[m], want), m


@pytest.mark.parametrize("rank", [0, 1])
def test_lfm_update_batch_is_whole_on_every_process(rank, monkeypatch):
    """Under torchrun the update sees every clip of the first half on each process (their gradients are then
    averaged), as one process does."""
    from utils import distributed
    model = tiny_classifier(3, "concat")
    method = build(args_of("lfm"))
    method.batch_clips = clip_items(8)
    method.prepare_batch = prepared()
    alone = method.update_batch(model)
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    monkeypatch.setattr(distributed, "rank", lambda: rank)
    inputs, labels = method.update_batch(model)
    assert torch.equal(labels, alone[1]) and len(labels) == 4
    assert all(torch.equal(inputs[m], alone[0][m]) for m in inputs)
