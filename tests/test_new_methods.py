"""MMPareto, PMR, AGM, InfoReg, MBSD, CML, OPM, UMT and UME: each mechanism against a direct computation, on
the audio-visual pair and, for the methods defined for any number of modalities (MMPareto, AGM, CML), on the
generated three-modality set (tests/helpers/tiny_models.py THREE); the pairwise ones refuse it in one line."""
import itertools
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from dataset.errors import DataError
from dataset.modalities import AUDIO_VISUAL
from helpers.tiny_models import IN_CHANNELS, THREE, build, tiny_classifier, unimodal_run
from utils.methods.agm import ScaleGradient, agm_coefficients, shapley_outputs
from utils.methods.base import encoder_params
from utils.methods.cml import cml_loss
from utils.methods.inforeg import learning_window_k
from utils.methods.mbsd import mbsd_loss
from utils.methods.mmpareto import combine, min_norm_weights, pareto_weights
from utils.methods.opm import drop_features, drop_probabilities
from utils.methods.pmr import prototype_logits
from utils.methods.step import Step
from utils.precision import Precision


def args_for(method, **kw):
    base = dict(method=method, amp="off", random_seed=0, modulation_starts=0, modulation_ends=None, batch_size=4,
                mmpareto_gamma=1.5, mmpareto_variant="authors", agm_alpha=1.5, inforeg_beta_audio=0.95,
                inforeg_beta_visual=0.1, inforeg_threshold=0.05, opm_q_base=0.5, opm_lambda=0.5, opm_p_exe=1.0,
                opm_warmup=0, pmr_alpha=2.0, pmr_momentum=0.0, pmr_fraction=0.5, pmr_prototype_set="train",
                cml_lambda=0.1, cml_penalty="batch", agm_clip=1.0, umt_lambda=10.0,
                umt_teachers=None, ume_runs=None, scaling=10.0)
    return SimpleNamespace(**{**base, **kw})


def batch(n=4, modalities=AUDIO_VISUAL):
    """({name: input}, labels): audio-like (n, 1, 64, 48) single-channel inputs, (n, 3, 1, 32, 32) frames."""
    g = torch.Generator().manual_seed(3)
    shapes = {1: (n, 1, 64, 48), 3: (n, 3, 1, 32, 32)}
    inputs = {m.name: torch.randn(*shapes[IN_CHANNELS[m.name]], generator=g) for m in modalities}
    return inputs, torch.tensor([0, 1, 2, 0, 1, 2][:n])


def model_for(method, fusion="concat", mmcosine=False, modalities=AUDIO_VISUAL, **kw):
    model = tiny_classifier(3, fusion, mmcosine=mmcosine, modalities=modalities)
    m = build(args_for(method, **kw), modalities)
    m.configure_model(model)
    return model, m


def step_of(model, lr=1.0, epoch=1, modalities=AUDIO_VISUAL):
    inputs, labels = batch(modalities=modalities)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr)
    return Step(model, model, optimizer, Precision("off", torch.device("cpu")), inputs, labels, epoch, 0)


def encoder_of(name):
    """The modality whose encoder holds the parameter `name`, or None."""
    return name.split(".")[1] if name.startswith("encoders.") else None


# ---- MMPareto
def test_min_norm_weights_minimise_the_combined_norm():
    g1, g2 = torch.tensor([1.0, 0.2, -0.3]), torch.tensor([-0.5, 1.0, 0.4])
    c, rest = min_norm_weights(g1, g2)
    grid = torch.linspace(0, 1, 100001)
    norms = ((grid[:, None] * g1 + (1 - grid[:, None]) * g2) ** 2).sum(1)
    assert c == pytest.approx(grid[norms.argmin()].item(), abs=1e-4) and rest == pytest.approx(1 - c)
    assert min_norm_weights(torch.tensor([1.0, 0.0]), torch.tensor([2.0, 0.0])) == (0.999, 0.001)  # MinNormSolver ends


def test_pareto_weights_are_equal_when_gradients_agree_and_min_norm_when_they_conflict():
    agree = pareto_weights(torch.tensor([1.0, 1.0]), torch.tensor([1.0, 0.5]))
    assert agree[:2] == (0.5, 0.5) and agree[2] > 0
    g_mm, g_uni = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 3.0])
    w_mm, w_uni, cosine = pareto_weights(g_mm, g_uni)
    assert cosine < 0 and (w_mm, w_uni) == pytest.approx(min_norm_weights(g_mm, g_uni))
    new = combine(g_mm, g_uni, torch.tensor([100.0, 0.0]), w_mm, w_uni, 1.5)  # shorter than g_sum: lengthened
    assert new.norm().item() == pytest.approx(150.0)


@pytest.mark.parametrize("modalities", [AUDIO_VISUAL, THREE], ids=["av", "three"])
def test_mmpareto_step_is_the_authors_update(modalities):
    names = [m.name for m in modalities]
    model, method = model_for("mmpareto", modalities=modalities)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    step = step_of(model, modalities=modalities)
    out, logged = method.train_step(step)
    # Directly: the per-loss gradients by separate backward passes, as MMPareto.py: the fused loss and one
    # loss per modality's own head.
    ref = tiny_classifier(3, "concat", modalities=modalities)
    ref.add_unimodal_heads()
    ref.load_state_dict({n: before[n] for n in before}, strict=False)
    ref.train()
    o = ref(step.inputs)
    losses = {"mm": F.cross_entropy(o.logits, step.labels)}
    losses.update({m: F.cross_entropy(o.heads[m], step.labels) for m in names})
    grads = {}
    for key, loss in losses.items():
        ref.zero_grad()
        loss.backward(retain_graph=True)
        grads[key] = {n: p.grad.clone() for n, p in ref.named_parameters() if p.grad is not None}
    ref.zero_grad()
    sum(losses.values()).backward()
    for n, p in ref.named_parameters():
        expected = p.grad
        modality = encoder_of(n)
        if modality is not None:
            own = [k for k, _ in ref.named_parameters() if encoder_of(k) == modality]
            flat = lambda key: torch.cat([grads[key][k].reshape(-1) for k in own])  # noqa: E731
            w_mm, w_uni, cosine = pareto_weights(flat("mm"), flat(modality))
            assert logged[f"mmpareto_cos_{modality}"] == pytest.approx(cosine, rel=1e-5)
            new = 2 * w_mm * grads["mm"][n] + 2 * w_uni * grads[modality][n]
            ratio = p.grad.norm() / new.norm()
            expected = (ratio * new if ratio > 1 else new) * 1.5
        torch.testing.assert_close(dict(model.named_parameters())[n].detach(), before[n] - expected,
                                   rtol=1e-4, atol=1e-6, msg=n)
    assert sorted(k for k in logged if k.startswith("mmpareto_cos_")) == sorted(f"mmpareto_cos_{m}" for m in names)


@pytest.mark.parametrize("modalities", [AUDIO_VISUAL, THREE], ids=["av", "three"])
def test_mmpareto_balancebenchmark_variant_triples_the_encoder_gradients(modalities):
    model, method = model_for("mmpareto", mmpareto_variant="balancebenchmark", modalities=modalities)
    assert model.unimodal_heads is None
    step = step_of(model, modalities=modalities)
    out = step.forward()
    loss = method.loss(out, step.labels, 1)
    expected = F.cross_entropy(out.logits, step.labels)
    for m in modalities:
        expected = expected + F.cross_entropy(out.unimodal[m.name], step.labels)
    assert loss.item() == pytest.approx(expected.item())
    loss.backward()
    plain = {n: p.grad.clone() for n, p in model.named_parameters()}
    method.before_step(model, out, step.labels, 1)
    for n, p in model.named_parameters():
        factor = 3.0 if encoder_of(n) is not None else 1.0
        assert torch.allclose(p.grad, factor * plain[n]), n


# ---- PMR
def test_prototype_logits_are_negative_distances():
    feats, protos = torch.randn(5, 8), torch.randn(3, 8)
    direct = -torch.stack([torch.stack([(f - c).pow(2).sum().sqrt() for c in protos]) for f in feats])
    assert torch.allclose(prototype_logits(feats, protos), direct, atol=1e-5)


def test_pmr_boosts_the_modality_behind_on_its_prototypes_and_computes_class_means():
    model, method = model_for("pmr")
    inputs, labels = batch()
    model.eval()
    with torch.no_grad():
        out = model(inputs)
    method.train_set = list(range(4))
    method.forward_batches = lambda dataset, keys: iter([(out, labels)])
    method.compute_prototypes(1, 3)
    for m in ("audio", "visual"):
        means = torch.stack([out.enc[m][labels == k].mean(0) for k in range(3)])
        assert torch.allclose(method.prototypes[m], means, atol=1e-6)
    # Make audio lead: its prototypes are its own features' class means, the visual ones far away.
    method.prototypes["visual"] = method.prototypes["visual"] + 100.0
    loss = method.loss(out, labels, 1)
    proto_v = prototype_logits(out.enc["visual"], method.prototypes["visual"])
    expected = F.cross_entropy(out.logits, labels) + 2.0 * F.cross_entropy(proto_v, labels)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert method.logged["pmr_boosted_visual"] == 1.0 and method.logged["pmr_boosted_audio"] == 0.0
    assert method.loss(out, labels, 72).item() == pytest.approx(F.cross_entropy(out.logits, labels).item())  # after 0..70


# ---- AGM
def test_agm_shapley_outputs_sum_to_the_full_output_and_coefficients_follow_the_authors():
    full, no_v, no_a = torch.randn(3, 4), torch.randn(3, 4), torch.randn(3, 4)
    mono = shapley_outputs(full, {("audio",): no_v, ("visual",): no_a}, ("audio", "visual"))
    assert torch.allclose(mono["audio"] + mono["visual"], full)
    assert torch.allclose(mono["audio"], (full - no_a + no_v) / 2)
    assert torch.allclose(mono["visual"], (full - no_v + no_a) / 2)
    # Audio's loss is now lower (relative to visual) than on average: audio is slowed, visual sped up.
    coeffs = agm_coefficients({"audio": 0.5, "visual": 1.5}, {"audio": 1.0, "visual": 1.0}, alpha=1.5)
    assert coeffs["audio"] == pytest.approx(math.exp(1.5 * (1 - math.exp(1.0))))
    assert coeffs["visual"] == pytest.approx(math.exp(1.5 * min(1 - math.exp(-1.0), 10)))
    assert coeffs["audio"] < 1 < coeffs["visual"]


def urfunny_outputs(f):
    """The authors' three-modality mono-modal outputs, as model/URFunny_net.py writes them (t, a, v there; x, y, z
    here), from f[the modalities kept] (their all-zeroed pass enters none of them)."""
    total, pad_t, pad_a, pad_v = f["xyz"], f["yz"], f["xz"], f["xy"]
    pad_va, pad_vt, pad_at = f["x"], f["y"], f["z"]
    return {"x": (total - pad_t + pad_va) / 3 + (pad_v - pad_at + pad_a - pad_vt) / 6,
            "y": (total - pad_a + pad_vt) / 3 + (pad_v - pad_at + pad_t - pad_va) / 6,
            "z": (total - pad_v + pad_at) / 3 + (pad_a - pad_vt + pad_t - pad_va) / 6}


def test_agm_shapley_outputs_on_three_modalities_are_the_authors_urfunny_outputs():
    g = torch.Generator().manual_seed(0)
    f = {"".join(kept): torch.randn(5, 3, generator=g)
         for size in (1, 2, 3) for kept in itertools.combinations("xyz", size)}
    mono = shapley_outputs(f["xyz"], {tuple(k): f[k] for k in f if len(k) < 3}, ("x", "y", "z"))
    expected = urfunny_outputs(f)
    for m in "xyz":
        torch.testing.assert_close(mono[m], expected[m], rtol=1e-5, atol=1e-6, msg=m)
    torch.testing.assert_close(mono["x"] + mono["y"] + mono["z"], f["xyz"], rtol=1e-5, atol=1e-5)
    # The Shapley value as the mean marginal gain over the 3! orders of arrival, v(empty) = 0.
    for m in "xyz":
        gains = []
        for order in itertools.permutations("xyz"):
            before = "".join(sorted(order[:order.index(m)]))
            after = "".join(sorted(before + m))
            gains.append(f[after] - (f[before] if before else 0))
        torch.testing.assert_close(mono[m], sum(gains) / 6, rtol=1e-5, atol=1e-6, msg=m)


def test_agm_coefficients_on_three_modalities_are_the_authors_urfunny_ones():
    scores, means = {"x": 0.4, "y": 1.1, "z": 0.9}, {"x": 0.8, "y": 0.7, "z": 1.0}
    coeffs = agm_coefficients(scores, means, alpha=1.5)
    mean_score, optimal_mean = sum(scores.values()) / 3, sum(means.values()) / 3
    for m in scores:  # run/URFunny_main.py, with the CREMA-D cap 10 (UR-Funny's script caps at 7)
        ratio = math.exp((mean_score - scores[m]) * 3 / 2)
        optimal = math.exp((optimal_mean - means[m]) * 3 / 2)
        assert coeffs[m] == pytest.approx(math.exp(1.5 * min(optimal - ratio, 10)), rel=1e-12), m
    assert coeffs["x"] < 1 < coeffs["y"]  # x now ahead of its average standing: slowed; y behind: sped up


def test_scale_gradient_scales_only_the_backward():
    x = torch.randn(3, requires_grad=True)
    y = ScaleGradient.apply(x, 0.25)
    assert torch.equal(y, x)
    y.sum().backward()
    assert torch.allclose(x.grad, torch.full((3,), 0.25))


# ---- InfoReg
def test_inforeg_window_k_is_the_authors_formula():
    traces = [0.0] * 10 + [4.0]
    assert learning_window_k(traces) == pytest.approx(1.0)
    traces = [0.0] * 10 + [4.0, 4.0]
    assert learning_window_k(traces) == pytest.approx((0.8 - 0.4) / 0.8)


def test_inforeg_holds_the_leading_encoder_towards_its_epoch_start():
    model, method = model_for("inforeg")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    method.start_epoch(1, model, optimizer)
    with torch.no_grad():
        for p in encoder_params(model, "audio") + encoder_params(model, "visual"):
            p.add_(0.01)
    inputs, labels = batch()
    out = model(inputs)
    loss = method.loss(out, labels, 1)
    assert loss.item() == pytest.approx(sum(F.cross_entropy(x, labels).item()
                                            for x in (out.logits, out.unimodal["audio"], out.unimodal["visual"])),
                                        rel=1e-5)
    loss.backward()
    plain = {n: p.grad.clone() for n, p in model.named_parameters()}
    logged = method.before_step(model, out, labels, 1)
    s_a = out.unimodal["audio"].softmax(1).gather(1, labels[:, None]).sum().item()
    s_v = out.unimodal["visual"].softmax(1).gather(1, labels[:, None]).sum().item()
    held = "audio" if s_a > s_v else "visual"
    beta = (0.95 if held == "audio" else 0.1) * math.exp(math.tanh(abs(s_a - s_v)))
    assert logged[f"inforeg_held_{held}"] == 1.0
    for n, p in model.named_parameters():
        extra = beta * 0.01 if encoder_of(n) == held else 0.0
        assert torch.allclose(p.grad, plain[n] + extra, atol=1e-6), n
    trace = method.end_epoch(1, model)["inforeg_fisher_trace_audio"]
    direct = sum((p.grad ** 2).mean().item() for p in encoder_params(model, "audio") if p.dim() in (2, 4))
    assert trace == pytest.approx(direct, rel=1e-5) and method.traces[-1] == trace


# ---- MBSD and CML
def test_mbsd_loss_per_sample():
    g = torch.Generator().manual_seed(0)
    z, z_a, z_v = (torch.randn(5, 3, generator=g) for _ in range(3))
    labels = torch.tensor([0, 1, 2, 0, 1])
    total, _ = mbsd_loss(z, z_a, z_v, labels)
    expected = F.cross_entropy(z, labels) + F.cross_entropy(z_a, labels) + F.cross_entropy(z_v, labels)
    for i, y in enumerate(labels):
        p_a, p_v = z_a[i].softmax(0), z_v[i].softmax(0)
        right = p_a.argmax() == y or p_v.argmax() == y
        w = abs(p_a[y] - p_v[y]) if right else 0.0
        ps, pw = max(p_a[y], p_v[y]), min(p_a[y], p_v[y])
        expected = expected + w * ((z_a[i] - z_v[i]) ** 2).mean() / 5 + w * pw * (torch.log(pw) - ps) / 5
    assert total.item() == pytest.approx(expected.item(), rel=1e-5)


def zeroed_fusion(model, feat, dropped):
    """The fused logits with the features of the `dropped` modalities zeroed."""
    return model.fusion({m: torch.zeros_like(f) if m in dropped else f for m, f in feat.items()})[1]


@pytest.mark.parametrize("fusion,mmcosine", [("concat", False), ("sum", False), ("concat", True)])
def test_cml_partial_prediction_is_the_model_without_the_removed_modality(fusion, mmcosine):
    model, method = model_for("cml", fusion=fusion, mmcosine=mmcosine)
    inputs, labels = batch()
    out = model(inputs)
    method.removed = ("visual",)
    partials = method.partial_logits(out)
    assert len(partials) == 1
    if mmcosine:
        direct = model.unimodal_logits(out.feat)["audio"]
    else:
        direct = zeroed_fusion(model, out.feat, {"visual"})
    assert torch.allclose(partials[0], direct, atol=1e-5)
    loss, hinge = cml_loss(out.logits, partials, labels, 0.1)
    gap = (partials[0].softmax(1).max(1).values - out.logits.softmax(1).max(1).values).sum()
    assert hinge.item() == pytest.approx(max(gap.item(), 0.0), abs=1e-6)
    assert loss.item() == pytest.approx(((F.cross_entropy(out.logits, labels) + F.cross_entropy(partials[0], labels))
                                         / 2 + 0.1 * hinge).item(), rel=1e-5)


@pytest.mark.parametrize("fusion,mmcosine", [("concat", False), ("sum", False), ("concat", True)])
@pytest.mark.parametrize("kind", ["batch", "sample"])
def test_cml_on_three_modalities_removes_them_one_after_another(fusion, mmcosine, kind):
    """BalanceBenchmark's CML_trainer for three: z_1 without z, z_2 without z and y; (CE(z) + CE(z_1) + CE(z_2)) / 3
    plus lambda times the penalties of z_1 against z and of z_2 against z_1."""
    model, method = model_for("cml", fusion=fusion, mmcosine=mmcosine, modalities=THREE, cml_penalty=kind)
    inputs, labels = batch(6, THREE)
    out = model(inputs)
    method.removed = ("z", "y")
    if mmcosine:
        cos = model.unimodal_logits(out.feat)
        direct = [cos["x"] + cos["y"], cos["x"]]
    else:
        direct = [zeroed_fusion(model, out.feat, {"z"}), zeroed_fusion(model, out.feat, {"z", "y"})]
    partials = method.partial_logits(out)
    for got, want in zip(partials, direct, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)

    def penalty(full, partial):  # sample by sample, as conf_loss / the authors' rank_loss
        gaps = []
        for zs, zp, y in zip(full, partial, labels):
            ps, pp = zs.softmax(0), zp.softmax(0)
            exempt = kind == "sample" and pp.argmax() == y and ps.argmax() != y
            gaps.append(0.0 if exempt else (pp.max() - ps.max()).item())
        return max(0.0, sum(gaps)) if kind == "batch" else sum(max(0.0, x) for x in gaps)
    expected_penalty = penalty(out.logits, direct[0]) + penalty(direct[0], direct[1])
    ce = sum(F.cross_entropy(x, labels).item() for x in (out.logits, *direct)) / 3
    loss = method.loss(out, labels, 1)
    assert method.logged["cml_hinge"] == pytest.approx(expected_penalty, abs=1e-5)
    assert loss.item() == pytest.approx(ce + 0.1 * expected_penalty, rel=1e-5)


def test_cml_on_three_modalities_draws_a_removal_order_per_epoch():
    model, method = model_for("cml", modalities=THREE)
    orders = []
    for epoch in range(1, 61):
        logged = method.start_epoch(epoch, model, None)
        assert len(method.removed) == 2 and len(set(method.removed)) == 2
        assert sorted(logged) == ["cml_removed_x", "cml_removed_y"]  # z first is implied by the other two
        assert logged == {f"cml_removed_{m}": float(method.removed[0] == m) for m in "xy"}
        orders.append(method.removed)
    assert set(orders) == set(itertools.permutations("xyz", 2))  # every order of removal occurs
    again = build(args_for("cml"), THREE)
    for epoch, order in enumerate(orders, start=1):
        again.start_epoch(epoch, model, None)
        assert again.removed == order  # (seed, epoch) decide it


# Sample 0: only the partial prediction is right, and it is the more confident (exempt from the authors' per-sample
# penalty); sample 1: both wrong, the partial one more confident (counted); sample 2: the full one more confident.
CML_LOGITS = torch.tensor([[0.0, 2.0, 0.0], [0.0, 0.0, 1.0], [4.0, 0.0, 0.0]])
CML_PARTIAL = torch.tensor([[3.0, 0.0, 0.0], [0.0, 0.0, 2.0], [1.0, 0.0, 0.0]])
CML_LABELS = torch.tensor([0, 1, 0])


def direct_cml_penalties():
    """(BalanceBenchmark's batch hinge, the authors' per-sample hinge) on the example, sample by sample."""
    gaps, counted = [], []
    for z, z_p, y in zip(CML_LOGITS, CML_PARTIAL, CML_LABELS):
        p, p_p = z.softmax(0), z_p.softmax(0)
        gaps.append((p_p.max() - p.max()).item())
        counted.append(not (p_p.argmax() == y and p.argmax() != y))
    assert counted == [False, True, True] and gaps[0] > 0 and gaps[1] > 0 and gaps[2] < 0
    return max(0.0, sum(gaps)), sum(max(0.0, g) for g, keep in zip(gaps, counted) if keep)


def test_cml_penalties_against_a_direct_computation():
    batch_penalty, sample_penalty = direct_cml_penalties()
    assert batch_penalty != pytest.approx(sample_penalty)
    ce = (F.cross_entropy(CML_LOGITS, CML_LABELS) + F.cross_entropy(CML_PARTIAL, CML_LABELS)).item() / 2
    for kind, penalty in (("batch", batch_penalty), ("sample", sample_penalty)):
        loss, value = cml_loss(CML_LOGITS, [CML_PARTIAL], CML_LABELS, 0.1, kind)
        assert value.item() == pytest.approx(penalty, abs=1e-6), kind
        assert loss.item() == pytest.approx(ce + 0.1 * penalty, rel=1e-6), kind


def test_cml_chain_of_partial_predictions_against_a_direct_computation():
    """Three modalities: the second partial prediction is held to the first, not to the full one."""
    second = 3 * CML_PARTIAL  # more confident again than the first partial prediction, on every sample
    gaps = {"first": [], "second": []}
    for z, z_1, z_2 in zip(CML_LOGITS, CML_PARTIAL, second):
        gaps["first"].append((z_1.softmax(0).max() - z.softmax(0).max()).item())
        gaps["second"].append((z_2.softmax(0).max() - z_1.softmax(0).max()).item())
    assert all(g > 0 for g in gaps["second"])
    batch_penalty = max(0.0, sum(gaps["first"])) + max(0.0, sum(gaps["second"]))
    ce = sum(F.cross_entropy(x, CML_LABELS).item() for x in (CML_LOGITS, CML_PARTIAL, second)) / 3
    loss, value = cml_loss(CML_LOGITS, [CML_PARTIAL, second], CML_LABELS, 0.1, "batch")
    assert value.item() == pytest.approx(batch_penalty, abs=1e-6)
    assert loss.item() == pytest.approx(ce + 0.1 * batch_penalty, rel=1e-6)


@pytest.mark.parametrize("kind", ["batch", "sample"])
def test_cml_penalty_flag_reaches_the_loss(kind):
    method = build(args_for("cml", cml_penalty=kind))
    method.model = SimpleNamespace(mmcosine=True)  # the partial logits are the fused minus the removed modality's
    method.removed = ("audio",)
    out = SimpleNamespace(logits=CML_LOGITS, unimodal={"audio": CML_LOGITS - CML_PARTIAL, "visual": CML_PARTIAL})
    penalty = dict(zip(("batch", "sample"), direct_cml_penalties()))[kind]
    ce = (F.cross_entropy(CML_LOGITS, CML_LABELS) + F.cross_entropy(CML_PARTIAL, CML_LABELS)).item() / 2
    assert method.loss(out, CML_LABELS, 1).item() == pytest.approx(ce + 0.1 * penalty, rel=1e-5)
    assert method.logged["cml_hinge"] == pytest.approx(penalty, abs=1e-6)


# ---- OPM
def test_opm_drops_only_the_leading_modality_and_rescales():
    assert drop_probabilities(2.0, 1.0, 0.5, 0.5) == pytest.approx((0.5 * (1 + 0.5 * math.tanh(1.0)), 0.0))
    assert drop_probabilities(1.0, 3.0, 0.5, 0.5)[0] == 0.0
    a, v = torch.ones(4, 2), torch.ones(4, 6)
    keep_a, keep_v = torch.tensor([1.0, 0.0, 1.0, 0.0]), torch.ones(4)
    dropped = drop_features({"audio": a, "visual": v}, {"audio": keep_a, "visual": keep_v},
                            {"audio": 0.5, "visual": 0.0})
    theta = 2 * 0.5 / 8
    assert torch.allclose(dropped["audio"], keep_a[:, None] / (1 - theta) * a)
    assert torch.allclose(dropped["visual"], v / (1 - theta))


def test_opm_step_trains_the_fused_head_on_the_dropped_features():
    model, method = model_for("opm")
    step = step_of(model, lr=0.0)
    torch.manual_seed(4)
    out, logged = method.train_step(step)
    q_a, q_v = logged["opm_q_a"], logged["opm_q_v"]
    assert logged["opm_modulated"] == 1.0 and (q_a == 0.0) != (q_v == 0.0)
    torch.manual_seed(4)
    torch.rand(1)
    keep = torch.bernoulli(torch.tensor([1 - q_a, 1 - q_v]).expand(4, 2))
    with torch.no_grad():
        enc = model.encode(step.inputs)  # train-mode BatchNorm: the step's own features
    theta = (512 * q_a + 512 * q_v) / 1024
    dropped = {"audio": enc["audio"] * keep[:, 0:1] / (1 - theta), "visual": enc["visual"] * keep[:, 1:2] / (1 - theta)}
    for m in ("audio", "visual"):
        assert torch.allclose(out.enc[m], dropped[m], atol=1e-5), m
    assert torch.allclose(out.logits, model.fusion(dropped)[1], atol=1e-5)
    assert model.feature_transform is None  # set for the step only


def test_opm_refuses_a_nonlinear_fusion():
    with pytest.raises(DataError, match="concat or sum"):
        model_for("opm", fusion="gated")


# ---- the pairwise methods refuse other counts of modalities
@pytest.mark.parametrize("method", ["pmr", "inforeg", "mbsd", "opm"])
def test_pairwise_methods_refuse_three_modalities_in_one_line(method):
    with pytest.raises(DataError) as err:
        build(args_for(method), THREE)
    assert str(err.value) == (f"--method {method} is defined for 2 modalities and this dataset has 3 (x, y, z): "
                              "choose another --method")


# ---- UMT and UME


@pytest.mark.parametrize("fusion,mmcosine", [("concat", False), ("sum", False), ("concat", True), ("sum", True)])
def test_ume_logits_are_the_mean_of_the_two_unimodal_models(tmp_path, fusion, mmcosine):
    (run_a, model_a), (run_v, model_v) = unimodal_run(tmp_path, "audio", fusion, mmcosine), \
        unimodal_run(tmp_path, "visual", fusion, mmcosine, seed=2)
    model, method = model_for("ume", fusion=fusion, mmcosine=mmcosine, ume_runs=[str(run_a), str(run_v)])
    model.eval()
    inputs, _ = batch()
    with torch.no_grad():
        expected = (model_a(inputs).logits + model_v(inputs).logits) / 2
        assert torch.allclose(model(inputs).logits, expected, atol=1e-5)


def test_ume_refuses_runs_of_another_head(tmp_path):
    run_a, _ = unimodal_run(tmp_path, "audio", mmcosine=True)
    run_v, _ = unimodal_run(tmp_path, "visual", mmcosine=True)
    with pytest.raises(DataError, match="mmcosine"):
        model_for("ume", ume_runs=[str(run_a), str(run_v)])
    with pytest.raises(DataError, match="not a visual_only run"):
        model_for("ume", mmcosine=True, ume_runs=[str(run_a), str(run_a)])


def test_umt_loss_adds_the_distance_to_the_frozen_teachers(tmp_path):
    (run_a, teacher_a), (run_v, teacher_v) = unimodal_run(tmp_path, "audio"), unimodal_run(tmp_path, "visual", seed=2)
    model, method = model_for("umt", umt_teachers=[str(run_a), str(run_v)], umt_lambda=10.0)
    step = step_of(model, lr=0.0)
    captured = {}
    original = method.loss
    method.loss = lambda out, labels, epoch: captured.setdefault("loss", original(out, labels, epoch))
    out, _ = method.train_step(step)
    with torch.no_grad():
        t_a = teacher_a.encoders["audio"](step.inputs["audio"])
        t_v = teacher_v.encoders["visual"](step.inputs["visual"])
    expected = F.cross_entropy(out.logits, step.labels) + 10.0 * (F.mse_loss(out.enc["audio"], t_a)
                                                                  + F.mse_loss(out.enc["visual"], t_v))
    assert captured["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert all(not p.requires_grad for t in method.teachers.values() for p in t.parameters())


@pytest.mark.parametrize("method_name,flag", [("umt", "umt_teachers"), ("ume", "ume_runs")])
def test_unimodal_runs_chosen_on_the_test_set_are_named_in_one_line(tmp_path, capsys, method_name, flag):
    run_a, _ = unimodal_run(tmp_path, "audio", best={"acc": 50.0, "epoch": 3, "split": "test"})
    run_v, _ = unimodal_run(tmp_path, "visual", seed=2, best={"acc": 40.0, "epoch": 2, "split": "val"})
    model_for(method_name, **{flag: [str(run_a), str(run_v)]})
    lines = [line for line in capsys.readouterr().out.splitlines() if "best.pt on the test set" in line]
    assert len(lines) == 1 and str(run_a) in lines[0] and str(run_v) not in lines[0] and f"--{flag}" in lines[0]


def test_the_selection_split_comes_from_the_checkpoint_else_from_the_run_flags(tmp_path):
    import json

    from utils.methods.unimodal_runs import selected_on
    assert selected_on(tmp_path, {"best": {"split": "val"}, "args": {"val_split": None}}) == "val"  # AVE's own list
    assert selected_on(tmp_path, {"args": {"val_split": None}}) == "test"
    assert selected_on(tmp_path, {"args": {"val_split": "0.1"}}) == "val"
    assert selected_on(tmp_path, {}) is None
    (tmp_path / "args.json").write_text(json.dumps({"val_split": None}))
    assert selected_on(tmp_path, {}) == "test"
