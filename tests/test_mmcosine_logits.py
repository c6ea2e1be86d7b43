"""The model's logits against the formulas in DESIGN.md, for every fusion, with and without MMCosine."""
import pytest
import torch
import torch.nn.functional as F

from models import AVClassifier, FUSIONS


def inputs(batch=3):
    g = torch.Generator().manual_seed(0)
    return torch.randn(batch, 1, 64, 48, generator=g), torch.randn(batch, 3, 2, 32, 32, generator=g)


def encoded(model, audio, visual):
    return model.audio_encoder(audio), model.visual_encoder(visual)


def fused_features(model, a, v):
    """DESIGN.md's fusion formulas written out independently of models/fusion.py."""
    f = model.fusion
    if model.fusion_name in ("sum", "concat"):
        return a, v
    if model.fusion_name == "film":
        ga, ba = f.fc_a(a)[:, :512], f.fc_a(a)[:, 512:]
        gv, bv = f.fc_v(v)[:, :512], f.fc_v(v)[:, 512:]
        return gv * a + bv, ga * v + ba
    ha, hv = f.fc_a(a), f.fc_v(v)
    return torch.sigmoid(hv) * ha, torch.sigmoid(ha) * hv


@pytest.mark.parametrize("fusion", sorted(FUSIONS))
def test_mmcosine_logits_match_formula(fusion):
    torch.manual_seed(1)
    model = AVClassifier(n_classes=6, fusion=fusion, mmcosine=True, scaling=7.5).eval()
    audio, visual = inputs()
    with torch.no_grad():
        out = model(audio, visual)
        fa, fv = fused_features(model, *encoded(model, audio, visual))
        w_a, w_v = model.classifier_weights()
    assert torch.allclose(out.feat_a, fa, atol=1e-5) and torch.allclose(out.feat_v, fv, atol=1e-5)
    assert w_a.shape == w_v.shape == (6, 512)
    for feat, w, logits in ((fa, w_a, out.logits_a), (fv, w_v, out.logits_v)):
        expected = torch.empty(3, 6)
        for i in range(3):
            for k in range(6):
                expected[i, k] = 7.5 * torch.dot(feat[i], w[k]) / (feat[i].norm() * w[k].norm())
        assert torch.allclose(logits, expected, atol=1e-4)
        assert logits.abs().max() <= 7.5 + 1e-4
    assert torch.allclose(out.logits, out.logits_a + out.logits_v, atol=1e-5)


@pytest.mark.parametrize("fusion", sorted(FUSIONS))
def test_baseline_unimodal_logits_match_formula(fusion):
    torch.manual_seed(2)
    model = AVClassifier(n_classes=5, fusion=fusion, mmcosine=False).eval()
    audio, visual = inputs()
    with torch.no_grad():
        out = model(audio, visual)
        fa, fv = fused_features(model, *encoded(model, audio, visual))
    f = model.fusion
    if fusion == "sum":
        exp_a, exp_v = f.fc_a(fa), f.fc_v(fv)  # each branch's own layer
        exp_fused = exp_a + exp_v
    else:
        W, b = f.fc_out.weight, f.fc_out.bias
        exp_a = fa @ W[:, :512].t() + b / 2
        exp_v = fv @ W[:, 512:].t() + b / 2
        exp_fused = torch.cat([fa, fv], 1) @ W.t() + b
    assert torch.allclose(out.logits_a, exp_a, atol=1e-4)
    assert torch.allclose(out.logits_v, exp_v, atol=1e-4)
    assert torch.allclose(out.logits, exp_fused, atol=1e-4)
    assert torch.allclose(out.logits, out.logits_a + out.logits_v, atol=1e-4)


@pytest.mark.parametrize("fusion", ["sum", "gated"])
def test_mmcosine_logits_have_no_bias_and_gradients_reach_every_trained_parameter(fusion):
    model = AVClassifier(n_classes=4, fusion=fusion, mmcosine=True)
    biases = model.fusion.classifier_layer_biases()
    # As in the release, the layer keeps its (initial, untrained) bias: frozen, out of the loss.
    assert biases and all(not b.requires_grad for b in biases)
    audio, visual = inputs(4)
    F.cross_entropy(model(audio, visual).logits, torch.tensor([0, 1, 2, 3])).backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    assert all(b.grad is None for b in biases)


@pytest.mark.parametrize("fusion", FUSIONS)
def test_linear_logits_are_the_fusion_layers_plain_output(fusion):
    """Under MMCosine, logits_linear is what the released main_CD.py valid() scored: the plain layer
    with un-normalised weights and its bias; without MMCosine it is the fused logits themselves."""
    torch.manual_seed(0)
    audio, visual = inputs(3)
    for mmcosine in (True, False):
        model = AVClassifier(n_classes=5, fusion=fusion, mmcosine=mmcosine).eval()
        with torch.no_grad():
            out = model(audio, visual)
        f = model.fusion
        if fusion == "sum":
            expected = out.feat_a @ f.fc_a.weight.t() + f.fc_a.bias + out.feat_v @ f.fc_v.weight.t() + f.fc_v.bias
        else:
            expected = torch.cat([out.feat_a, out.feat_v], 1) @ f.fc_out.weight.t() + f.fc_out.bias
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
        one = model.visual_encoder(frame)
        three = model.visual_encoder(frame.repeat(1, 1, 3, 1, 1))
    assert torch.allclose(one, three, atol=1e-5)


def test_unknown_fusion_is_rejected():
    with pytest.raises(ValueError, match="unknown fusion"):
        AVClassifier(n_classes=3, fusion="attention")
