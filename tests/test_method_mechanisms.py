"""Each method's mechanism against a direct computation that does not reuse the method's code, on a tiny
classifier (tests/helpers/tiny_models.py): which encoder each AGM coefficient scales (two modalities and three),
the eval-mode zeroed passes and the authors' clipping; PMR's EMA, its prototype subset and AVE's validation set;
InfoReg's window over epochs; OPM's skipped batches; MMPareto's conflict branch in the full step; CML's and
MBSD's epoch windows and CML's per-epoch draw. Each test was run against a mutation of the code it names
(mechanism removed, sign or comparison flipped, modalities swapped) and failed."""
import copy
import itertools
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from dataset.errors import DataError
from dataset.modalities import AUDIO_VISUAL
from helpers.clips import Clips, passes_over
from helpers.tiny_models import THREE, build, method_args, tiny_batch, tiny_classifier
from utils.methods import agm as agm_module
from utils.methods.agm import clip_like_the_authors
from utils.methods.base import encoder_params
from utils.methods.mbsd import mbsd_loss
from utils.methods.step import Step
from utils.precision import Precision
from utils.seed import sample_seed


def setup(method, *flags, fusion="concat", mmcosine=False, modalities=AUDIO_VISUAL):
    model = tiny_classifier(3, fusion, mmcosine, modalities=modalities)
    m = build(method_args(method, *flags, modalities=modalities), modalities)
    m.configure_model(model)
    return model, m


def make_step(model, inputs, labels, lr=0.0, epoch=1):
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr)
    return Step(model, model, optimizer, Precision("off", torch.device("cpu")), inputs, labels, epoch, 0)


def recorded_step(model, method, inputs, labels):
    """(the gradients the method steps with, by parameter name; its logged numbers)."""
    step = make_step(model, inputs, labels)
    taken = {}
    step.step_with = taken.update
    _, logged = method.train_step(step)
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(p)]: g.detach().clone() for p, g in taken.items()}, logged


# ---- AGM
def mono_modal_outputs(f):
    """The authors' mono-modal outputs from f[kept modalities] (a string of their first letters): CREMAD_net.py's
    for two, URFunny_net.py's for three."""
    if "xyz" in f:
        total, pad_t, pad_a, pad_v = f["xyz"], f["yz"], f["xz"], f["xy"]
        pad_va, pad_vt, pad_at = f["x"], f["y"], f["z"]
        return {"x": (total - pad_t + pad_va) / 3 + (pad_v - pad_at + pad_a - pad_vt) / 6,
                "y": (total - pad_a + pad_vt) / 3 + (pad_v - pad_at + pad_t - pad_va) / 6,
                "z": (total - pad_v + pad_at) / 3 + (pad_a - pad_vt + pad_t - pad_va) / 6}
    full, no_visual, no_audio = f["av"], f["a"], f["v"]
    return {"audio": (full - no_audio + no_visual) / 2, "visual": (full - no_visual + no_audio) / 2}


def direct_agm_gradients(model, state, inputs, labels, coeffs):
    """The authors' GradMod by hand: f(all) in train mode, f with every non-empty proper subset of the modalities
    kept (the others zeroed) in eval mode with gradients; the loss's gradient reaches the parameters through each
    modality's mono-modal output times its coefficient."""
    ref = copy.deepcopy(model)
    ref.load_state_dict(state)
    ref.train()
    names = list(inputs)
    f = {"".join(m[0] for m in names): ref(inputs).logits}
    ref.eval()
    for size in range(1, len(names)):
        for kept in itertools.combinations(names, size):
            f["".join(m[0] for m in kept)] = ref({m: x if m in kept else torch.zeros_like(x)
                                                  for m, x in inputs.items()}).logits
    mono = mono_modal_outputs(f)
    z = sum(mono.values()).detach().requires_grad_(True)
    dz = torch.autograd.grad(F.cross_entropy(z, labels), z)[0]
    surrogate = sum(coeffs[m] * (mono[m] * dz).sum() for m in names)
    params_by_name, params = zip(*[(n, p) for n, p in ref.named_parameters() if p.requires_grad])
    grads = torch.autograd.grad(surrogate, params, allow_unused=True)
    return dict(zip(params_by_name, grads)), {m: x.detach() for m, x in mono.items()}


@pytest.mark.parametrize("modalities", [AUDIO_VISUAL, THREE], ids=["av", "three"])
def test_agm_coefficients_scale_the_gradient_through_their_own_modality(monkeypatch, modalities):
    names = [m.name for m in modalities]
    model, method = setup("agm", "--agm_clip", "0", modalities=modalities)
    inputs, labels = tiny_batch(modalities=modalities)
    state = copy.deepcopy(model.state_dict())
    calls = []
    forced_coeffs = dict(zip(names, (0.25, 4.0, 1.5)))

    def forced(*args):
        calls.append(copy.deepcopy(args))
        return dict(forced_coeffs)
    monkeypatch.setattr(agm_module, "agm_coefficients", forced)
    modes = []
    hook = model.register_forward_pre_hook(lambda module, args: modes.append(
        (module.training, torch.is_grad_enabled(), *(bool(args[0][m].eq(0).all()) for m in names))))
    taken, logged = recorded_step(model, method, inputs, labels)
    hook.remove()
    # The zeroed passes run in eval mode, with gradients, one per non-empty proper subset of the modalities; the full
    # pass in train mode; the model is left training.
    zeroed = [z for z in itertools.product((False, True), repeat=len(names)) if any(z) and not all(z)]
    assert sorted(modes) == sorted([(True, True, *[False] * len(names))] + [(False, True, *z) for z in zeroed])
    assert model.training
    direct, mono = direct_agm_gradients(model, state, inputs, labels, forced_coeffs)
    for name, grad in direct.items():
        torch.testing.assert_close(taken[name], grad if grad is not None else torch.zeros_like(taken[name]),
                                   rtol=1e-4, atol=1e-7, msg=name)
    # The scores the coefficients came from: each modality's from its own mono-modal output, running means 0 at the
    # first step.
    scores = {m: F.cross_entropy(mono[m], labels).item() for m in names}
    got_scores, got_means, alpha = calls[0]
    assert got_scores == pytest.approx(scores, rel=1e-5) and got_means == {m: 0.0 for m in names} and alpha == 1.5
    tags = {m.name: m.tag for m in modalities}
    assert {m: logged[f"agm_coeff_{tags[m]}"] for m in names} == forced_coeffs
    # The running means enter the next step's coefficients (updated after this step's).
    recorded_step(model, method, inputs, labels)
    assert calls[1][1] == pytest.approx(scores, rel=1e-5)


def test_agm_zeroed_passes_leave_batchnorm_statistics_alone():
    model, method = setup("agm", "--agm_clip", "0")
    inputs, labels = tiny_batch()
    ref = copy.deepcopy(model)
    recorded_step(model, method, inputs, labels)
    ref.train()
    with torch.no_grad():
        ref(inputs)  # the one train-mode pass
    for (name, buf), (_, expected) in zip(model.named_buffers(), ref.named_buffers()):
        torch.testing.assert_close(buf, expected, msg=name)


@pytest.mark.parametrize("fusion,louder", [("concat", None), ("sum", "audio"), ("sum", "visual")])
def test_agm_clips_all_gradients_when_the_fusion_weights_gradient_exceeds_the_bound(fusion, louder):
    model, _ = setup("agm", fusion=fusion)
    if louder is not None:  # features 10 x larger: that modality's fusion layer gets the larger gradient peak
        with torch.no_grad():
            for p in model.encoders[louder].trunk[-2].parameters():
                p.mul_(10)
    inputs, labels = tiny_batch()
    state = copy.deepcopy(model.state_dict())

    def run(bound):
        model.load_state_dict(state)
        method = build(method_args("agm", "--agm_clip", str(bound)))
        return recorded_step(model, method, inputs, labels)
    raw, logged = run(0)
    assert logged["agm_clipped"] == 0.0
    watched = ["fusion.fc_out.weight"] if fusion == "concat" else ["fusion.fc.audio.weight", "fusion.fc.visual.weight"]
    assert [p for p in model.fusion.classifier_layer_weights()] == [dict(model.named_parameters())[n] for n in watched]
    peaks = sorted(raw[n].abs().max().item() for n in watched)
    if louder is not None:  # sum fusion: either layer's gradient counts, so clipping follows the larger peak
        assert raw[f"fusion.fc.{louder}.weight"].abs().max().item() == peaks[-1]
    total = torch.linalg.vector_norm(torch.stack([g.norm() for g in raw.values()])).item()
    # Below every peak (concat), or between the two layers' peaks (sum: either layer counts): clipped as torch clips.
    bound = 0.5 * peaks[0] if fusion == "concat" else (peaks[0] + peaks[1]) / 2
    clipped, logged = run(bound)
    assert logged["agm_clipped"] == 1.0
    copies = {n: torch.zeros_like(g, requires_grad=True) for n, g in raw.items()}
    for n, p in copies.items():
        p.grad = raw[n].clone()
    torch.nn.utils.clip_grad_norm_(list(copies.values()), max_norm=bound)
    for n, p in copies.items():
        torch.testing.assert_close(clipped[n], p.grad, rtol=1e-5, atol=1e-9, msg=n)
    # Above the peaks but below the total norm: the rule looks at the fusion weights only, so nothing changes.
    bound = 1.5 * peaks[-1]
    assert total > bound
    untouched, logged = run(bound)
    assert logged["agm_clipped"] == 0.0
    for n, g in raw.items():
        torch.testing.assert_close(untouched[n], g, rtol=1e-6, atol=0, msg=n)


def test_agm_clip_rule_on_given_gradients():
    grads = [torch.tensor([3.0, -4.0]), torch.tensor([[0.5, 12.0]])]
    same, clipped = clip_like_the_authors(grads, [grads[0]], 0.0)  # 0: off, however large
    assert not clipped and all(torch.equal(a, b) for a, b in zip(same, grads))
    new, clipped = clip_like_the_authors(grads, [grads[0]], 3.5)  # |-4| > 3.5: the total norm (13.01) becomes 3.5
    total = math.sqrt(9 + 16 + 0.25 + 144)
    assert clipped and torch.allclose(new[1], grads[1] * 3.5 / (total + 1e-6))
    assert clip_like_the_authors(grads, [grads[0]], 4.0)[1] is False  # the watched tensor is within [-4, 4]


# ---- PMR
def fake_pass(features, labels):
    """A forward_batches giving fixed encoder features per call (one batch), whatever the keys."""
    calls = iter(features)

    def forward_batches(dataset, keys):
        enc_a, enc_v = next(calls)
        yield SimpleNamespace(enc={"audio": enc_a, "visual": enc_v}), labels
    return forward_batches


def class_means(feats, labels, n=3):
    return torch.stack([feats[labels == k].mean(0) for k in range(n)])


def test_pmr_prototypes_are_an_ema_from_the_third_computation_on():
    _, method = setup("pmr", "--pmr_momentum", "0.3")
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    g = torch.Generator().manual_seed(0)
    feats = [(torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)) for _ in range(4)]
    method.train_set = list(range(6))
    method.forward_batches = fake_pass(feats, labels)
    expected = None
    for epoch, (a, v) in enumerate(feats[:3], start=1):
        method.compute_prototypes(epoch, 3)
        fresh = {"audio": class_means(a, labels), "visual": class_means(v, labels)}
        expected = fresh if epoch <= 2 else {m: 0.7 * fresh[m] + 0.3 * expected[m] for m in fresh}
        for m in fresh:
            torch.testing.assert_close(method.prototypes[m], expected[m], msg=f"{m} at computation {epoch}")
    resumed = build(method_args("pmr", "--pmr_momentum", "0.3"))  # the count survives a resume
    resumed.load_state_dict(method.state_dict())
    resumed.train_set, resumed.forward_batches = method.train_set, fake_pass(feats[3:], labels)
    resumed.compute_prototypes(4, 3)
    torch.testing.assert_close(resumed.prototypes["audio"],
                               0.7 * class_means(feats[3][0], labels) + 0.3 * expected["audio"])


def recording(forward_batches, seen):
    def wrapped(dataset, keys):
        seen.append((dataset, list(keys)))
        return forward_batches(dataset, keys)
    return wrapped


@pytest.mark.parametrize("n,used", [(40, 4), (95, 8), (10, 4)])  # 10, 24, 3 batches of 4: a tenth, at least one
def test_pmr_prototypes_average_the_first_tenth_of_a_shuffled_augmented_pass(n, used):
    model, method = setup("pmr", "--batch_size", "4")
    g = torch.Generator().manual_seed(1)
    clips = Clips(torch.randn(n, 1, 32, 24, generator=g), torch.randn(n, 3, 2, 16, 16, generator=g),
                  torch.arange(n) % 3)
    method.split_train(clips, 0)
    seen = []
    method.forward_batches = recording(passes_over(model), seen)
    chosen = []
    for epoch in (1, 2):
        method.compute_prototypes(epoch, 3)
        dataset, keys = seen[-1]
        indices = [i for i, _ in keys]
        assert dataset is clips and len(indices) == used and len(set(indices)) == used
        assert [s for _, s in keys] == [sample_seed(0, -epoch, i) for i in indices]  # augmented, its own draws
        chosen.append(indices)
        if epoch == 1:  # prototypes: class means over exactly those clips (a class absent there: zeros)
            model.eval()
            with torch.no_grad():
                enc_a = model.encoders["audio"](torch.stack([clips[i][0] for i in indices]))
            labels = torch.tensor([clips[i][2] for i in indices])
            for k in range(3):
                mean = enc_a[labels == k].mean(0) if (labels == k).any() else torch.zeros(512)
                torch.testing.assert_close(method.prototypes["audio"][k], mean, rtol=1e-4, atol=1e-5)
    assert chosen[0] != chosen[1] and chosen[0] != list(range(used))  # a new shuffle each epoch
    method.compute_prototypes(1, 3)
    assert [i for i, _ in seen[-1][1]] == chosen[0]  # one (seed, epoch), one subset: a resume draws the same


def test_pmr_on_the_validation_set_uses_all_of_it_unaugmented():
    model, method = setup("pmr", "--batch_size", "4", "--pmr_prototype_set", "validation")
    inputs, labels = tiny_batch(6)
    audio, visual = inputs["audio"], inputs["visual"]
    train, val = Clips(audio, visual, labels), Clips(audio[:5] * 2, visual[:5], labels[:5])
    assert method.split_train(train, 0, val=val) == (train, None)
    seen = []
    method.forward_batches = recording(passes_over(model), seen)
    method.compute_prototypes(1, 3)
    assert seen == [(val, [0, 1, 2, 3, 4])]  # every clip, plain keys: the evaluation transform
    model.eval()
    with torch.no_grad():
        enc_v = model.encoders["visual"](visual[:5])
    torch.testing.assert_close(method.prototypes["visual"], class_means(enc_v, labels[:5]), rtol=1e-4, atol=1e-5)
    with pytest.raises(DataError, match="--pmr_prototype_set validation needs a validation set") as err:
        setup("pmr", "--pmr_prototype_set", "validation")[1].split_train(train, 0, val=None)
    assert "\n" not in str(err.value)


# ---- InfoReg
def perturbed_inforeg(*flags):
    model, method = setup("inforeg", *flags)
    method.start_epoch(1, model, None)
    with torch.no_grad():
        for p in encoder_params(model, "audio") + encoder_params(model, "visual"):
            p.add_(0.01)
    inputs, labels = tiny_batch()
    out = model(inputs)
    method.loss(out, labels, 1).backward()
    return model, method, out, labels


@pytest.mark.parametrize("k,applied", [(0.05, False), (0.0501, True), (0.0, False)])
def test_inforeg_adds_no_proximal_term_once_the_window_closes(k, applied):
    model, method, out, labels = perturbed_inforeg()
    plain = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    method.k = k  # k <= --inforeg_threshold (0.05): closed
    logged = method.before_step(model, out, labels, 1)
    assert logged["inforeg_held_audio"] + logged["inforeg_held_visual"] == float(applied)
    changed = [n for n, p in model.named_parameters() if p.grad is not None and not torch.equal(p.grad, plain[n])]
    assert bool(changed) == applied


def test_inforeg_window_k_over_epochs():
    model, method = setup("inforeg")
    weights = [p for p in encoder_params(model, "audio") if p.dim() in (2, 4)]
    tie = SimpleNamespace(unimodal={"audio": torch.zeros(2, 3), "visual": torch.zeros(2, 3)})  # no modality ahead
    for epoch in range(1, 14):
        logged = method.start_epoch(epoch, model, None)
        # Constant traces c: the list is ten zeros then c, c, ...; with j of them, k = 1/j while j <= 10, then 0.
        j = epoch - 1
        expected = 1.0 if epoch == 1 else (1.0 / j if j <= 10 else 0.0)
        assert logged["inforeg_k"] == pytest.approx(expected), epoch
        assert logged["inforeg_window_open"] == float(expected > 0.05), epoch
        for _ in range(2):  # two steps, each gradient 0.5 everywhere: the trace is sum over weights of mean(2 * 0.25)
            for p in encoder_params(model, "audio"):
                p.grad = torch.full_like(p, 0.5)
            method.before_step(model, tie, torch.tensor([0, 1]), epoch)
        trace = method.end_epoch(epoch, model)["inforeg_fisher_trace_audio"]
        assert trace == pytest.approx(len(weights) * 0.5)
    resumed = build(method_args("inforeg"))
    resumed.load_state_dict(method.state_dict())
    assert resumed.start_epoch(14, model, None)["inforeg_k"] == 0.0


# ---- OPM
def draw_seed(low, high):
    """A seed whose first torch.rand(1) lies in [low, high)."""
    for seed in range(1000):
        torch.manual_seed(seed)
        if low <= torch.rand(1).item() < high:
            return seed
    raise AssertionError("no seed")


@pytest.mark.parametrize("draw,epoch,modulated", [((0.0, 0.3), 7, False), ((0.3, 0.7), 7, True),
                                                   ((0.3, 0.7), 6, False)])  # p_exe 0.7: r >= 0.3; warm-up 1..6
def test_opm_modulates_a_batch_only_when_p_exe_says_so_and_after_the_warmup(draw, epoch, modulated):
    model, method = setup("opm")
    inputs, labels = tiny_batch()
    step = make_step(model, inputs, labels, epoch=epoch)
    captured = {}
    original = method.loss
    method.loss = lambda out, y, e: captured.setdefault("loss", original(out, y, e))
    with torch.no_grad():
        model.train()
        enc = model.encode(inputs)  # train-mode BatchNorm: the step's own features
    torch.manual_seed(draw_seed(*draw))
    out, logged = method.train_step(step)
    assert logged["opm_modulated"] == float(modulated)
    unchanged = all(torch.allclose(out.enc[m], enc[m], atol=1e-6) for m in ("audio", "visual"))
    assert unchanged != modulated
    if not modulated:
        assert captured["loss"].item() == pytest.approx(F.cross_entropy(model.fusion(enc)[1], labels).item(), rel=1e-5)


# ---- MMPareto
def test_mmpareto_conflicting_gradients_take_the_min_norm_weights_in_the_step():
    model, method = setup("mmpareto")
    with torch.no_grad():  # a small fused head, the audio head -3 times its audio columns: g_audio ~ -3 g_mm
        model.fusion.fc_out.weight.mul_(0.01)
        model.fusion.fc_out.bias.zero_()
        model.unimodal_heads["audio"].weight.copy_(-3 * model.fusion.fc_out.weight[:, :512])
        model.unimodal_heads["audio"].bias.zero_()
    inputs, labels = tiny_batch()
    ref = copy.deepcopy(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    step = make_step(model, inputs, labels, lr=1.0)
    _, logged = method.train_step(step)
    # Directly: separate backward passes, the weight by a search, 2 (c g_mm + (1 - c) g_a) per tensor, no
    # shorter than the summed loss's gradient, times 1.5.
    out = ref(inputs)
    losses = [F.cross_entropy(x, labels) for x in (out.logits, out.heads["audio"], out.heads["visual"])]
    enc = [p for p in ref.encoders["audio"].parameters()]
    g_mm, g_a, g_sum = (torch.autograd.grad(loss, enc, retain_graph=True)
                        for loss in (losses[0], losses[1], sum(losses)))
    flat_mm, flat_a = torch.cat([g.flatten() for g in g_mm]), torch.cat([g.flatten() for g in g_a])
    assert F.cosine_similarity(flat_mm, flat_a, dim=0) < 0
    v11, v12, v22 = ((x.double() @ y.double()).item()
                     for x, y in ((flat_mm, flat_mm), (flat_mm, flat_a), (flat_a, flat_a)))
    low, high = 0.001, 0.999  # ternary search of |c g_mm + (1 - c) g_a|^2 (convex in c) on MinNormSolver's range
    for _ in range(200):
        c1, c2 = low + (high - low) / 3, high - (high - low) / 3
        sq = [c * c * v11 + 2 * c * (1 - c) * v12 + (1 - c) ** 2 * v22 for c in (c1, c2)]
        low, high = (low, c2) if sq[0] < sq[1] else (c1, high)
    c = (low + high) / 2
    assert abs(c - 0.5) > 0.1  # the equal weights of agreeing gradients would be far off
    assert logged["mmpareto_conflict_audio"] == 1.0 and logged["mmpareto_weight_mm_audio"] == pytest.approx(c, rel=1e-6)
    for (name, p), a, b, s in zip(model.encoders["audio"].named_parameters(), g_mm, g_a, g_sum):
        new = 2 * c * a + 2 * (1 - c) * b
        new = new * max(1.0, (s.norm() / new.norm()).item()) * 1.5
        torch.testing.assert_close(before[f"encoders.audio.{name}"] - p.detach(), new, rtol=2e-3, atol=1e-7, msg=name)


# ---- CML and MBSD: the epoch window; CML's draw
@pytest.mark.parametrize("method_name", ["cml", "mbsd"])
def test_cml_and_mbsd_regularise_only_inside_their_window(method_name):
    inputs, labels = tiny_batch()
    for flags, inside, outside in (([], 81, 82), (["--modulation_starts", "3"], 4, 3)):  # 0-based 0..80 / 3..80
        model, method = setup(method_name, *flags)
        method.start_epoch(1, model, None)
        out = model(inputs)
        plain = F.cross_entropy(out.logits, labels).item()
        assert method.loss(out, labels, outside).item() == pytest.approx(plain, rel=1e-6)
        if method_name == "mbsd":
            # checked per sample elsewhere
            full = mbsd_loss(out.logits, out.unimodal["audio"], out.unimodal["visual"], labels)[0].item()
            assert method.loss(out, labels, inside).item() == pytest.approx(full, rel=1e-6)
            assert full != pytest.approx(plain, rel=1e-3)
        else:
            zeroed = model.fusion({m: torch.zeros_like(f) if m in method.removed else f
                                   for m, f in out.feat.items()})[1]
            assert method.loss(out, labels, inside).item() == pytest.approx(
                (plain + F.cross_entropy(zeroed, labels).item()) / 2 + 0.1 * method.logged["cml_hinge"], rel=1e-5)
            assert method.loss(out, labels, inside).item() != pytest.approx(plain, rel=1e-4)


def test_cml_draws_the_removed_modality_per_epoch_and_removes_that_one():
    model, method = setup("cml")
    draws = [method.start_epoch(e, model, None)["cml_removed_audio"] for e in range(1, 41)]
    assert 8 <= sum(draws) <= 32  # both modalities, about half the epochs each
    again = build(method_args("cml"))
    assert [again.start_epoch(e, model, None)["cml_removed_audio"] for e in range(1, 41)] == draws  # (seed, epoch)
    other = build(method_args("cml", "--random_seed", "1"))
    assert [other.start_epoch(e, model, None)["cml_removed_audio"] for e in range(1, 41)] != draws
    inputs, labels = tiny_batch()
    out = model(inputs)
    for removed in (1.0, 0.0):
        epoch = draws.index(removed) + 1
        method.start_epoch(epoch, model, None)
        gone = "audio" if removed else "visual"
        kept = {m: torch.zeros_like(f) if m == gone else f for m, f in out.feat.items()}
        (partial,) = method.partial_logits(out)
        torch.testing.assert_close(partial, model.fusion(kept)[1], rtol=1e-5, atol=1e-6)
