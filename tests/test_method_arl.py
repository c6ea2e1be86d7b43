"""ARL (utils/methods/arl.py): the weights against the authors' modality analysis typed out as they wrote it
(main_arl_variance.py:116-153), their M-modality softmax, and one training step against a direct computation
(their ConcatFusion_AUXI slices through the live head, GradScale's (1 + w) on every encoder gradient, clip 40)
in and after the warm-up, with the released 0.5; the refused fusions and bad flags. torchrun:
tests/test_method_dgl.py::test_two_processes_train_as_one."""
import pytest
import torch
import torch.nn.functional as F

import main_CD
from conftest import TINY_FLAGS
from dataset.errors import DataError
from helpers.tiny_models import THREE, build, method_args, tiny_batch, tiny_classifier
from utils.methods.arl import arl_weights, batch_statistics
from utils.methods.step import Step
from utils.precision import Precision


def authors_weights(out_a, out_v, T):
    """Their per-batch weight [audio, visual], line by line (main_arl_variance.py:116-153)."""
    calculate_a = torch.mean(torch.abs(out_a), 0).sum().cpu().detach().numpy()
    calculate_b = torch.mean(torch.abs(out_v), 0).sum().cpu().detach().numpy()
    out_a = torch.softmax(out_a, dim=1)
    out_v = torch.softmax(out_v, dim=1)
    H_a = torch.sum(-out_a * torch.log(out_a + 1e-16), dim=1).mean().cpu().detach().numpy().item()
    H_v = torch.sum(-out_v * torch.log(out_v + 1e-16), dim=1).mean().cpu().detach().numpy().item()
    H_a_n, H_v_n = H_a / (H_a + H_v), H_v / (H_a + H_v)
    H_a = torch.clamp(torch.tensor(H_a_n), 0.3).cpu().detach().numpy()
    H_v = torch.clamp(torch.tensor(H_v_n), 0.3).cpu().detach().numpy()
    a_weight, v_weight = 1 / H_a, 1 / H_v
    calculate_a, calculate_b = calculate_a / (calculate_a + calculate_b), calculate_b / (calculate_a + calculate_b)
    a_weight, v_weight = a_weight / (a_weight + v_weight), v_weight / (a_weight + v_weight)
    return F.softmax(torch.tensor([(calculate_b * a_weight) * T, calculate_a * v_weight * T]), dim=0).tolist()


def logits(scale, seed, n=6):
    return scale * torch.randn(n, 3, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("scale_a,scale_v,T", [(3.0, 0.5, 8.0), (0.2, 2.0, 4.0), (1.0, 1.1, 8.0), (0.01, 0.02, 8.0)])
def test_weights_are_the_authors_modality_analysis(scale_a, scale_v, T):
    z_a, z_v = logits(scale_a, 1), logits(scale_v, 2)
    mine = arl_weights(*batch_statistics({"audio": z_a, "visual": z_v}), T)
    assert [mine["audio"], mine["visual"]] == pytest.approx(authors_weights(z_a, z_v, T), rel=1e-5)
    swapped = arl_weights(*batch_statistics({"visual": z_v, "audio": z_a}), T)
    assert swapped == pytest.approx(mine)  # the weights follow the modalities, not their order


def test_weights_on_three_modalities_are_the_softmax_over_three_terms():
    z = {"x": logits(3.0, 1), "y": logits(0.5, 2), "z": logits(1.0, 3)}
    magnitude = torch.stack([v.abs().sum(1).mean() for v in z.values()])
    entropy = torch.stack([-(v.softmax(1) * torch.log(v.softmax(1) + 1e-16)).sum(1).mean() for v in z.values()])
    certainty = 1 / (entropy / entropy.sum()).clamp(min=0.3)
    terms = 8.0 * (1 - magnitude / magnitude.sum()) * certainty / certainty.sum()
    mine = arl_weights(*batch_statistics(z), 8.0)
    assert list(mine.values()) == pytest.approx(terms.softmax(0).tolist(), rel=1e-5)


def setup(flags=(), fusion="concat", mmcosine=False):
    model = tiny_classifier(3, fusion, mmcosine=mmcosine)
    method = build(method_args("arl", *flags))
    method.configure_model(model)
    return model, method, *tiny_batch(6)


def method_grads(model, method, inputs, labels, epoch):
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.0)
    step = Step(model, model, optimizer, Precision("off", torch.device("cpu")), inputs, labels, epoch, 0)
    _, logged = method.train_step(step)
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}, logged


def authors_grads(model, inputs, labels, loss_weight, weights, clip=40.0, split_bias=False, T=8.0):
    """Their step: z_m = fc_out([f_a, 0]) / fc_out([0, f_v]) (live head; sum: fc_m(f_m); MMCosine: the cosine
    logits), loss CE(z) + loss_weight * (CE(z_a) + CE(z_v)), encoder gradients x (1 + w_m) (`weights`: None for the
    warm-up, "released" for 0.5 each, else their computed weight), clip. Returns (gradients, their weights)."""
    model.zero_grad()
    enc = model.encode(inputs)
    a, v = enc["audio"], enc["visual"]
    fusion = model.fusion
    if model.mmcosine:
        blocks = fusion.fc_out.weight.split(512, 1) if model.fusion_name == "concat" else (fusion.fc["audio"].weight,
                                                                                           fusion.fc["visual"].weight)
        z_a, z_v = (10.0 * F.normalize(f, dim=1) @ F.normalize(w, dim=1).t() for f, w in zip((a, v), blocks))
        z = z_a + z_v
    elif model.fusion_name == "concat":
        fc = fusion.fc_out
        bias = fc.bias / 2 if split_bias else fc.bias
        z = fc(torch.cat([a, v], 1))
        z_a = F.linear(torch.cat([a, torch.zeros_like(v)], 1), fc.weight, bias)
        z_v = F.linear(torch.cat([torch.zeros_like(a), v], 1), fc.weight, bias)
    else:
        z_a, z_v = fusion.fc["audio"](a), fusion.fc["visual"](v)
        z = z_a + z_v
    unimodal = F.cross_entropy(z_a, labels) + F.cross_entropy(z_v, labels)
    (F.cross_entropy(z, labels) + loss_weight * unimodal).backward()
    computed = authors_weights(z_a.detach(), z_v.detach(), T)
    w = {None: (0.0, 0.0), "released": (0.5, 0.5)}.get(weights, computed)
    for p in model.encoders["audio"].parameters():
        p.grad += p.grad * w[0]
    for p in model.encoders["visual"].parameters():
        p.grad += p.grad * w[1]
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    norm = torch.stack([g.norm() for g in grads.values()]).norm().item()
    coefficient = min(1.0, clip / (norm + 1e-6)) if clip > 0 else 1.0
    return {n: g * coefficient for n, g in grads.items()}, computed


def assert_same(mine, theirs):
    assert mine.keys() == theirs.keys()
    for name, grad in theirs.items():
        assert grad.abs().sum() > 0, name
        # atol: a conv bias before BatchNorm has a gradient of rounding noise (~1e-7)
        assert torch.allclose(mine[name], grad, rtol=1e-4, atol=1e-6), name


@pytest.mark.parametrize("fusion,mmcosine", [("concat", False), ("sum", False), ("concat", True)])
def test_step_after_the_warm_up_scales_each_encoder_by_its_weight(fusion, mmcosine):
    model, method, inputs, labels = setup(["--arl_gamma", "3"], fusion, mmcosine)
    theirs, w = authors_grads(model, inputs, labels, 3.0, "intended")
    assert abs(w[0] - w[1]) > 0.02  # a swap of the modalities' factors would show
    mine, logged = method_grads(model, method, inputs, labels, epoch=7)  # their 0-based epoch 6 > start 5
    assert_same(mine, theirs)
    assert [logged["arl_scale_a"], logged["arl_scale_v"]] == pytest.approx([1 + w[0], 1 + w[1]], rel=1e-5)
    assert [logged["arl_weight_a"], logged["arl_weight_v"]] == pytest.approx(w, rel=1e-5)


def test_warm_up_weighs_the_unimodal_losses_1_and_scales_nothing():
    model, method, inputs, labels = setup()
    theirs, _ = authors_grads(model, inputs, labels, 1.0, None)
    mine, logged = method_grads(model, method, inputs, labels, epoch=6)  # their epoch 5: not > start
    assert_same(mine, theirs)
    assert logged["arl_scale_a"] == logged["arl_scale_v"] == 1.0


def test_released_weights_and_the_split_bias_and_the_clip():
    model, method, inputs, labels = setup(["--arl_weights", "released", "--arl_bias", "split", "--arl_clip", "0.01",
                                           "--arl_start", "-1"])
    theirs, _ = authors_grads(model, inputs, labels, 4.0, "released", clip=0.01, split_bias=True)
    mine, logged = method_grads(model, method, inputs, labels, epoch=1)
    assert_same(mine, theirs)
    assert logged["arl_scale_a"] == logged["arl_scale_v"] == 1.5 and logged["arl_grad_norm"] > 0.01


def test_three_modalities_train_with_a_weight_each():
    model = tiny_classifier(3, "sum", modalities=THREE)
    method = build(method_args("arl", "--arl_start", "-1", modalities=THREE), THREE)
    method.configure_model(model)
    inputs, labels = tiny_batch(6, modalities=THREE)
    _, logged = method_grads(model, method, inputs, labels, epoch=1)
    weights = [logged[f"arl_weight_{m}"] for m in "xyz"]
    assert sum(weights) == pytest.approx(1.0) and [logged[f"arl_scale_{m}"] for m in "xyz"] == pytest.approx(
        [1 + w for w in weights])


@pytest.mark.parametrize("fusion", ["film", "gated"])
def test_pairwise_fusions_are_refused(fusion):
    with pytest.raises(DataError, match="use --fusion_method concat or sum"):
        build(method_args("arl")).configure_model(tiny_classifier(3, fusion))


@pytest.mark.parametrize("flags,message", [(["--fusion_method", "film"], "use --fusion_method concat or sum"),
                                           (["--arl_start", "-2"], "--arl_start"),
                                           (["--arl_temperature", "-1"], "--arl_temperature"),
                                           (["--arl_weights", "computed"], "--arl_weights")])
def test_bad_flags_are_one_error_line(flags, message, demo_root, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main_CD.main(["--train", "--data_root", str(demo_root), "--run_dir", str(tmp_path / "run"), "--epochs", "1",
                      "--method", "arl", *TINY_FLAGS, *flags])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert exit_info.value.code == 2 and message in err[-1] and "error:" in err[-1]
    assert len([line for line in err if "error" in line]) == 1, err
