"""MLA, ReconBoost, AMCo and LFM: each mechanism against a direct computation."""
import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import main_CD
from models import AVClassifier
from models.heads import EntropyWeighted
from utils.methods import build_method
from utils.methods.amco import block_masses, class_mask, mask_ratio
from utils.methods.base import encoder_params
from utils.methods.lfm import alpha_gradient, divergence, fitted_weights
from utils.methods.mla import project_gradient
from utils.methods.reconboost import boosting_loss
from utils.methods.step import Step
from utils.precision import Precision


def args_of(method, *flags, mmcosine=False):
    args = main_CD.build_parser().parse_args(["--method", method, *flags])
    args.fusion_method, args.mmcosine, args.scaling = "concat", mmcosine, 10.0
    return args


def model_with(method, *flags, mmcosine=False, classes=3):
    torch.manual_seed(0)
    model = AVClassifier(classes, "concat", mmcosine=mmcosine)
    method = build_method(args_of(method, *flags, mmcosine=mmcosine))
    method.configure_model(model)
    return model, method


def batch(n=4, classes=3):
    g = torch.Generator().manual_seed(3)
    return (torch.randn(n, 1, 64, 48, generator=g), torch.randn(n, 3, 1, 32, 32, generator=g),
            torch.arange(n) % classes)


def step_of(model, epoch=1, index=0, lr=0.5):
    audio, visual, labels = batch()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr)
    return Step(model, model, optimizer, Precision("off", torch.device("cpu")), audio, visual, labels, epoch, index, 2)


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
def test_mla_takes_an_audio_then_a_visual_step_through_one_shared_head():
    model, method = model_with("mla")
    assert model.fusion.fc_out.weight.shape == (3, 512)  # one head for both modalities' features
    ref = copy.deepcopy(model)
    method.train_step(step_of(model))
    audio, visual, labels = batch()
    enc_a, enc_v = ref.audio_encoder(audio), ref.visual_encoder(visual)  # one forward, as the authors
    head = list(ref.fusion.parameters())
    sgd(encoder_params(ref, "audio") + head, F.cross_entropy(ref.fusion.fc_out(enc_a), labels))
    sgd(encoder_params(ref, "visual") + head, F.cross_entropy(ref.fusion.fc_out(enc_v), labels))  # the moved head
    assert_same_params(model, ref)


def test_mla_entropy_fusion_per_sample_per_batch_and_fixed():
    g = torch.Generator().manual_seed(0)
    za, zv = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g) * 3

    def entropy(p):
        return -(p * p.log()).sum(1)
    h_a, h_v = entropy(za.softmax(1)), entropy(zv.softmax(1))
    top = torch.maximum(h_a, h_v)
    w_a = torch.exp(top - h_a) / (torch.exp(top - h_a) + torch.exp(top - h_v))
    fused = EntropyWeighted(4, "sample")(za, zv, None)[2]
    assert torch.allclose(fused, w_a[:, None] * za + (1 - w_a[:, None]) * zv, atol=1e-6)
    # the authors' calculate_entropy: softmax over dim 0, one sum over the whole batch
    ea, ev = -torch.sum(za.softmax(0) * za.softmax(0).log()), -torch.sum(zv.softmax(0) * zv.softmax(0).log())
    top = max(ea, ev)
    wa = torch.exp(top - ea) / (torch.exp(top - ea) + torch.exp(top - ev))
    assert torch.allclose(EntropyWeighted(4, "batch")(za, zv, None)[2], wa * za + (1 - wa) * zv, atol=1e-6)
    assert torch.allclose(EntropyWeighted(4, "fixed", 0.55)(za, zv, None)[2], 0.55 * za + 0.45 * zv)


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
    audio, visual, labels = batch()
    enc_a, enc_v = ref.audio_encoder(audio), ref.visual_encoder(visual)
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
    from dataset.errors import DataError
    with pytest.raises(DataError, match="--fusion_method concat"):
        build_method(args_of("mla")).configure_model(AVClassifier(3, "gated"))


# ---- ReconBoost
def test_reconboost_plan_stages_phases_and_members():
    method = build_method(args_of("reconboost"))
    plan = [method.stage_of(e) for e in range(1, 18)]
    assert [p[1:3] for p in plan[:8]] == [("audio", "modality")] * 4 + [("audio", "rectify")] * 4
    assert [p[1:3] for p in plan[8:16]] == [("visual", "modality")] * 4 + [("visual", "rectify")] * 4
    assert [e + 1 for e, p in enumerate(plan) if p[3]] == [1, 5, 9, 13, 17]  # fresh optimizer state here
    assert method.members(0, False) == [] and method.members(0, True) == ["audio"]
    assert method.members(1, False) == ["audio"] and method.members(1, True) == ["audio", "visual"]
    pretrained = build_method(args_of("reconboost", "--visual_pretrain", "v.pt"))
    assert pretrained.members(0, False) == ["visual"]


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
    audio, visual, labels = batch()
    enc_v = ref.visual_encoder(visual)
    with torch.no_grad():
        z_a = ref.head(ref.audio_encoder(audio), enc_v.detach()).logits_a
    z_v = ref.head(torch.zeros_like(enc_v), enc_v).logits_v
    loss = boosting_loss(z_v, ref.combiner.boost_rate.detach() * z_a, labels, 5.0, 1.0)
    if alignment == "gradient":
        loss = loss + 0.5 * F.mse_loss(z_v.softmax(1), z_a.softmax(1))
    sgd(encoder_params(ref, "visual") + list(ref.fusion.parameters()), loss)
    assert_same_params(model, ref)
    assert model.combiner.boost_rate.item() == 1.0  # beta learns only in rectification
    trained_audio = encoder_params(model, "audio")
    assert all(torch.equal(p, q) for p, q in zip(trained_audio, encoder_params(ref, "audio")))


def test_reconboost_rectification_trains_the_members_and_beta():
    model, method = model_with("reconboost")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    optimizer.state[model.combiner.boost_rate]["momentum_buffer"] = torch.tensor(9.0)
    method.start_epoch(5, model, optimizer)  # stage 0 rectification: only audio is a member
    assert not optimizer.state  # the phase starts from fresh optimizer state
    visual_before = [p.clone() for p in encoder_params(model, "visual")]
    ref = copy.deepcopy(model)
    method.train_step(step_of(model, epoch=5))
    audio, visual, labels = batch()
    out = ref.head(ref.audio_encoder(audio), torch.zeros(4, 512))
    sgd(encoder_params(ref, "audio") + list(ref.fusion.parameters()) + [ref.combiner.boost_rate],
        F.cross_entropy(ref.combiner.boost_rate * out.logits_a, labels))
    assert_same_params(model, ref)
    assert all(torch.equal(p, q) for p, q in zip(encoder_params(model, "visual"), visual_before))


@pytest.mark.parametrize("pretrained", [[], ["--visual_pretrain", "v.pt"]])
def test_reconboost_predicts_with_the_modalities_trained_so_far(pretrained):
    """Their ensemble holds a modality once its stage has run (or from the start when pretrained): before visual's
    first stage the prediction is beta z_a, whatever the frames; from then on beta (z_a + z_v)."""
    model, method = model_with("reconboost", *pretrained)
    with torch.no_grad():
        model.combiner.boost_rate.fill_(1.5)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    audio, visual, _ = batch()
    other_visual = torch.randn_like(visual)
    model.eval()
    for epoch in (1, 5, 9):  # stage 0: audio, then its rectification; stage 1: visual
        method.start_epoch(epoch, model, optimizer)
        with torch.no_grad():
            out, changed = model(audio, visual), model(audio, other_visual)
        visual_scored = epoch >= 9 or bool(pretrained)
        expected = 1.5 * (out.logits_a + out.logits_v) if visual_scored else 1.5 * out.logits_a
        assert torch.allclose(out.logits, expected, atol=1e-6), epoch
        assert torch.equal(out.logits, changed.logits) != visual_scored, epoch  # only a member's input counts
    method.start_epoch(2, model, optimizer)
    fresh = AVClassifier(3, "concat")
    fresh.set_head(model.head_spec)
    fresh.load_state_dict(model.state_dict())  # a checkpoint keeps which modalities its prediction sums
    assert torch.equal(fresh.combiner.members, torch.tensor([1.0, float(bool(pretrained))]))
    older = {k: v for k, v in model.state_dict().items() if k != "combiner.members"}
    fresh.load_state_dict(older)  # written before the members were kept: every modality, as it was scored then
    assert torch.equal(fresh.combiner.members, torch.ones(2))


# ---- AMCo
def test_amco_mask_ratio_and_masks():
    progress = [0.0, 0.1, 0.2, 0.3, 0.4]  # their l_t in the second epoch: + 1/10 per step
    assert [round(mask_ratio(p, 0.3), 4) for p in progress] == [0.0, 0.5, 0.866, 1.0, 1.0]
    mask = class_mask(6, 4, torch.Generator().manual_seed(0))
    assert mask.sum().item() == 2 and set(mask.tolist()) == {0.0, 1.0}


def test_amco_masks_the_dependent_modality_and_learns_which_one_is():
    model, method = model_with("amco", classes=6)
    method.dependent = {"audio": True, "visual": False}
    method.progress = 0.2
    ref = copy.deepcopy(model)
    step = Step(model, model, torch.optim.SGD(model.parameters(), lr=0.5), Precision("off", torch.device("cpu")),
                *batch(6, 6), 2, 3, 10)
    out, logged = method.train_step(step)
    assert logged["amco_mask_ratio"] == pytest.approx(math.sin(math.pi / 2 * 0.2 / 0.3))
    assert method.progress == pytest.approx(0.3)  # + epoch / 10, 0-based
    g = torch.Generator().manual_seed(__import__("utils.seed", fromlist=["x"]).sample_seed(0, 2, 3))
    mask = class_mask(6, int(logged["amco_mask_ratio"] * 6), g)
    audio, visual, labels = batch(6, 6)
    plain = ref(audio, visual)
    z_a = plain.logits_a * mask
    fused = ref.combiner.linear(z_a + plain.logits_v)
    assert torch.allclose(out.logits_a, z_a, atol=1e-6)
    sgd(list(ref.parameters()), F.cross_entropy(fused, labels) + F.cross_entropy(z_a, labels)
        + F.cross_entropy(plain.logits_v, labels))
    assert_same_params(model, ref)
    mass_a, mass_v = block_masses(out.logits_a, out.logits_v)
    share = torch.cat([out.logits_a, out.logits_v], 1).softmax(1)[:, :6].sum(1).mean().item()
    assert mass_a == pytest.approx(share) and mass_a + mass_v == pytest.approx(1.0)
    assert method.dependent == {"audio": mass_a > 0.5, "visual": mass_v > 0.5}
    model.eval()
    assert torch.allclose(model(audio, visual).logits, model.combiner.linear(model(audio, visual).logits_a
                                                                             + model(audio, visual).logits_v))


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


def test_lfm_hyper_gradient_is_the_hessian_vector_product():
    """Against forward-over-reverse differentiation (torch.func.jvp of the gradient), a different route to H c."""
    from torch.func import functional_call, grad, jvp
    torch.manual_seed(0)
    model = AVClassifier(3, "sum").eval()
    audio, visual, labels = batch(2)
    weights = (0.05, 0.95)
    value = alpha_gradient(model, audio, visual, labels, weights, "authors")
    params = dict(model.named_parameters())

    def losses(p):
        out = functional_call(model, p, (audio, visual))
        return F.cross_entropy(0.5 * (out.logits_a + out.logits_v), labels), divergence(out.logits_a, out.logits_v)
    direction = grad(lambda p: losses(p)[0])(params)
    _, hvp = jvp(grad(lambda p: weights[0] * losses(p)[0] + weights[1] * losses(p)[1]), (params,), (direction,))
    first = next(iter(params))
    assert value == pytest.approx(hvp[first].mean().item(), rel=1e-3, abs=1e-8)


def test_lfm_weight_update_clips_and_halves_its_step(monkeypatch):
    torch.manual_seed(0)
    model = AVClassifier(3, "concat")
    clips = [tuple(t[i] for t in batch(4)) for i in range(4)]
    audio, visual, labels = batch(4)
    model.eval()
    g = alpha_gradient(model, audio[:2], visual[:2], labels[:2], (0.5, 0.5), "authors")  # the first half, eval mode
    model.train()
    assert abs(g) > 1e-12
    lr = 0.2 / abs(g)  # a step of 0.2: inside [0.05, 0.95] from 0.5 either way, so a flipped sign would show

    def lfm(lr_alpha):
        method = build_method(args_of("lfm", "--lfm_lr_alpha", str(lr_alpha)))
        method.batch_clips, method.weights = clips, (0.5, 0.5)
        return method
    method = lfm(lr)
    record = method.start_epoch(1, model, torch.optim.SGD(model.parameters(), lr=0.1))
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
    out = model(*batch()[:2])
    labels = batch()[2]
    method.weights = (0.3, 0.7)
    expected = 2 * (0.3 * F.cross_entropy(0.5 * (out.logits_a + out.logits_v), labels)
                    + 0.7 * divergence(out.logits_a, out.logits_v))
    assert method.loss(out, labels, 1).item() == pytest.approx(expected.item(), rel=1e-6)
