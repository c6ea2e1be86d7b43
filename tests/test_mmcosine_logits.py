"""The model's logits against the formulas in DESIGN.md, for every fusion, with and without MMCosine, on the
audio-visual pair and on three generated modalities."""
import pytest
import torch
import torch.nn.functional as F

from helpers.tiny_models import THREE, tiny_batch, tiny_classifier
from helpers.tiny_models import resnet_classifier as AVClassifier
from models import FUSIONS


def inputs(batch=3):
    g = torch.Generator().manual_seed(0)
    return {"audio": torch.randn(batch, 1, 64, 48, generator=g), "visual": torch.randn(batch, 3, 2, 32, 32, generator=g)}


def encoded(model, x):
    return model.encoders["audio"](x["audio"]), model.encoders["visual"](x["visual"])


def fused_features(model, a, v):
    """DESIGN.md's fusion formulas written out independently of models/fusion.py."""
    f = model.fusion
    if model.fusion_name in ("sum", "concat"):
        return a, v
    if model.fusion_name == "film":
        ga, ba = f.fc["audio"](a)[:, :512], f.fc["audio"](a)[:, 512:]
        gv, bv = f.fc["visual"](v)[:, :512], f.fc["visual"](v)[:, 512:]
        return gv * a + bv, ga * v + ba
    ha, hv = f.fc["audio"](a), f.fc["visual"](v)
    return torch.sigmoid(hv) * ha, torch.sigmoid(ha) * hv


@pytest.mark.parametrize("fusion", sorted(FUSIONS))
def test_mmcosine_logits_match_formula(fusion):
    torch.manual_seed(1)
    model = AVClassifier(n_classes=6, fusion=fusion, mmcosine=True, scaling=7.5).eval()
    x = inputs()
    with torch.no_grad():
        out = model(x)
        fa, fv = fused_features(model, *encoded(model, x))
        w_a, w_v = model.classifier_weights()["audio"], model.classifier_weights()["visual"]
    assert torch.allclose(out.feat["audio"], fa, atol=1e-5) and torch.allclose(out.feat["visual"], fv, atol=1e-5)
    assert w_a.shape == w_v.shape == (6, 512)
    for feat, w, logits in ((fa, w_a, out.unimodal["audio"]), (fv, w_v, out.unimodal["visual"])):
        expected = torch.empty(3, 6)
        for i in range(3):
            for k in range(6):
                expected[i, k] = 7.5 * torch.dot(feat[i], w[k]) / (feat[i].norm() * w[k].norm())
        assert torch.allclose(logits, expected, atol=1e-4)
        assert logits.abs().max() <= 7.5 + 1e-4
    assert torch.allclose(out.logits, out.unimodal["audio"] + out.unimodal["visual"], atol=1e-5)


@pytest.mark.parametrize("fusion", sorted(FUSIONS))
def test_baseline_unimodal_logits_match_formula(fusion):
    torch.manual_seed(2)
    model = AVClassifier(n_classes=5, fusion=fusion, mmcosine=False).eval()
    x = inputs()
    with torch.no_grad():
        out = model(x)
        fa, fv = fused_features(model, *encoded(model, x))
    f = model.fusion
    if fusion == "sum":
        exp_a, exp_v = f.fc["audio"](fa), f.fc["visual"](fv)  # each branch's own layer
        exp_fused = exp_a + exp_v
    else:
        W, b = f.fc_out.weight, f.fc_out.bias
        exp_a = fa @ W[:, :512].t() + b / 2
        exp_v = fv @ W[:, 512:].t() + b / 2
        exp_fused = torch.cat([fa, fv], 1) @ W.t() + b
    assert torch.allclose(out.unimodal["audio"], exp_a, atol=1e-4)
    assert torch.allclose(out.unimodal["visual"], exp_v, atol=1e-4)
    assert torch.allclose(out.logits, exp_fused, atol=1e-4)
    assert torch.allclose(out.logits, out.unimodal["audio"] + out.unimodal["visual"], atol=1e-4)


@pytest.mark.parametrize("fusion", ["sum", "gated"])
def test_mmcosine_logits_have_no_bias_and_gradients_reach_every_trained_parameter(fusion):
    model = AVClassifier(n_classes=4, fusion=fusion, mmcosine=True)
    biases = model.fusion.classifier_layer_biases()
    # As in the release, the layer keeps its (initial, untrained) bias: frozen, out of the loss.
    assert biases and all(not b.requires_grad for b in biases)
    F.cross_entropy(model(inputs(4)).logits, torch.tensor([0, 1, 2, 3])).backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    assert all(b.grad is None for b in biases)


@pytest.mark.parametrize("fusion", FUSIONS)
def test_linear_logits_are_the_fusion_layers_plain_output(fusion):
    """Under MMCosine, logits_linear is what the released main_CD.py valid() scored: the plain layer
    with un-normalised weights and its bias; without MMCosine it is the fused logits themselves."""
    torch.manual_seed(0)
    x = inputs(3)
    for mmcosine in (True, False):
        model = AVClassifier(n_classes=5, fusion=fusion, mmcosine=mmcosine).eval()
        with torch.no_grad():
            out = model(x)
        f, fa, fv = model.fusion, out.feat["audio"], out.feat["visual"]
        if fusion == "sum":
            expected = (fa @ f.fc["audio"].weight.t() + f.fc["audio"].bias + fv @ f.fc["visual"].weight.t()
                        + f.fc["visual"].bias)
        else:
            expected = torch.cat([fa, fv], 1) @ f.fc_out.weight.t() + f.fc_out.bias
        assert torch.allclose(out.logits_linear, expected, atol=1e-4)
        if mmcosine:
            assert not torch.allclose(out.logits_linear, out.logits, atol=1e-2)
        else:
            assert torch.equal(out.logits_linear, out.logits)


def test_visual_encoder_pools_over_time():
    """T frames fold into the batch: a clip of T identical frames encodes like its single frame."""
    model = AVClassifier(n_classes=3).eval()
    frame = torch.randn(2, 3, 1, 32, 32)
    with torch.no_grad():
        one = model.encoders["visual"](frame)
        three = model.encoders["visual"](frame.repeat(1, 1, 3, 1, 1))
    assert torch.allclose(one, three, atol=1e-5)


def test_unknown_fusion_is_rejected():
    with pytest.raises(ValueError, match="unknown fusion"):
        AVClassifier(n_classes=3, fusion="attention")


@pytest.mark.parametrize("fusion", ["sum", "concat"])
@pytest.mark.parametrize("mmcosine", [False, True])
def test_three_modalities_fuse_as_the_formulas_say(fusion, mmcosine):
    """sum / concat over M = 3, and MMCosine as sum_m s * cos(f_m, W_m), written out independently."""
    model = tiny_classifier(n_classes=3, fusion=fusion, mmcosine=mmcosine, modalities=THREE).eval()
    model.scaling = 5.0
    x, _ = tiny_batch(4, modalities=THREE)
    with torch.no_grad():
        out = model(x)
        enc = {m: model.encoders[m](x[m]) for m in "xyz"}
    f = model.fusion
    if fusion == "sum":
        weights = {m: f.fc[m].weight for m in "xyz"}
        linear = sum(enc[m] @ weights[m].t() + f.fc[m].bias for m in "xyz")
    else:
        W = f.fc_out.weight
        weights = {m: W[:, i * 512:(i + 1) * 512] for i, m in enumerate("xyz")}
        linear = torch.cat([enc[m] for m in "xyz"], 1) @ W.t() + f.fc_out.bias
    assert list(out.unimodal) == ["x", "y", "z"]
    if mmcosine:
        for m in "xyz":
            expected = 5.0 * F.normalize(enc[m], dim=1) @ F.normalize(weights[m], dim=1).t()
            assert torch.allclose(out.unimodal[m], expected, atol=1e-5)
        assert torch.allclose(out.logits, sum(out.unimodal.values()), atol=1e-5)
    else:
        assert torch.allclose(out.logits, linear, atol=1e-4)
        assert torch.allclose(sum(out.unimodal.values()), linear, atol=1e-4)  # the bias split in three
    assert torch.allclose(out.logits_linear, linear, atol=1e-4)


@pytest.mark.parametrize("fusion", ["film", "gated"])
def test_pairwise_fusions_are_refused_for_three_modalities(fusion):
    with pytest.raises(ValueError, match=f"--fusion_method {fusion} is defined for two modalities and this dataset "
                                         "has 3: use concat, sum"):
        tiny_classifier(fusion=fusion, modalities=THREE)


@pytest.mark.parametrize("fusion", ["film", "gated"])
def test_pairwise_fusions_work_on_any_two_names(fusion):
    """FiLM and gated are defined by position, not by the names audio and visual."""
    pair = THREE[:2]
    model = tiny_classifier(fusion=fusion, modalities=pair).eval()
    x, _ = tiny_batch(4, modalities=pair)
    with torch.no_grad():
        out = model(x)
        a, v = model.encoders["x"](x["x"]), model.encoders["y"](x["y"])
        h = {m: model.fusion.fc[m] for m in "xy"}
        if fusion == "film":
            (ga, ba), (gv, bv) = h["x"](a).chunk(2, 1), h["y"](v).chunk(2, 1)
            fa, fv = gv * a + bv, ga * v + ba
        else:
            fa, fv = torch.sigmoid(h["y"](v)) * h["x"](a), torch.sigmoid(h["x"](a)) * h["y"](v)
    assert torch.allclose(out.feat["x"], fa, atol=1e-5) and torch.allclose(out.feat["y"], fv, atol=1e-5)
