"""Re-learning and the valuation methods (sample / modality level), and the resampled train set they
need: each mechanism against a direct computation, on two modalities (audio-visual) and on three
(tiny_models.THREE: x, y, z)."""
import copy
import math
from fractions import Fraction
from itertools import combinations, permutations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import default_collate

from helpers.clips import Clips
from helpers.tiny_models import THREE, build, tiny_classifier
from test_staged_methods import AV, args_of, batch, names, passes_over
from utils.engine import to_device
from utils.methods.flagged import FlaggedSamples
from utils.methods.relearning import cluster_purity, purity
from utils.methods.step import Step
from utils.methods.valuation import (alone, contributions, modality_level_entries, sample_copies, sample_level_entries,
                                     subsets)
from utils.precision import Precision
from utils.sampling import SeededSampler, TrainBatches
from utils.seed import sample_seed


def clips(n=12, classes=3, modalities=AV):
    """n clips as a dataset: items (x_1, ..., x_M, label)."""
    inputs, _ = batch(n, modalities=modalities)
    return Clips(*(inputs[m.name] for m in modalities), torch.arange(n) % classes)


# ---- Re-learning
def authors_purity(y_true, y_pred):
    """The authors' purity_score (code/ours.py), as written."""
    from sklearn.metrics import accuracy_score
    y_voted = np.zeros(y_true.shape)
    labels = np.unique(y_true)
    for k in range(labels.shape[0]):
        y_true[y_true == labels[k]] = np.arange(labels.shape[0])[k]
    labels = np.unique(y_true)
    bins = np.concatenate((labels, [np.max(labels) + 1]), axis=0)
    for cluster in np.unique(y_pred):
        hist, _ = np.histogram(y_true[y_pred == cluster], bins=bins)
        y_voted[y_pred == cluster] = np.argmax(hist)
    return accuracy_score(y_true, y_voted)


def test_purity_is_the_authors_and_kmeans_finds_separate_clusters():
    rng = np.random.default_rng(0)
    labels, clusters = rng.integers(0, 4, 200), rng.integers(0, 5, 200)
    assert purity(labels, clusters) == pytest.approx(authors_purity(labels.copy(), clusters))
    blobs = np.concatenate([rng.normal(c * 10, 0.1, (20, 8)) for c in range(3)])
    assert cluster_purity(blobs, np.repeat(np.arange(3), 20), 3) == 1.0


def test_relearning_schedule_is_the_authors_epochs():
    method = build(args_of("relearning"))  # R 20, at most 3 times, after their epochs 20, 40, 60
    assert [e for e in range(1, 100) if method.relearns_before(e)] == [22, 42, 62]


@pytest.mark.parametrize("modalities", [AV, THREE], ids=["av", "three"])
def test_relearning_moves_each_encoder_toward_its_start_by_its_purity_gap(modalities):
    model = tiny_classifier(3, "concat", modalities=modalities)
    method = build(args_of("relearning", "--relearn_every", "1", "--relearn_holdout", "0.5", modalities=modalities),
                   modalities)
    method.configure_model(model)
    start = copy.deepcopy(model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1)  # as if trained
    trained = copy.deepcopy(model)
    method.split_train(clips(12, modalities=modalities), 0)
    method.forward_batches = passes_over(model, modalities, batch_size=4)
    record = method.start_epoch(3, model, None)
    assert max(record[f"relearn_weight_{m}"] for m in names(modalities)) > 0.1  # something moved
    for m in names(modalities):
        gap = abs(record[f"relearn_purity_train_{m}"] - record[f"relearn_purity_heldout_{m}"])
        w = math.tanh(3.0 * gap)
        assert record[f"relearn_weight_{m}"] == pytest.approx(w)
        for (name, p), p0, p1 in zip(model.encoders[m].named_parameters(), start.encoders[m].parameters(),
                                     trained.encoders[m].parameters()):
            assert torch.allclose(p, w * p0 + (1 - w) * p1, atol=1e-6), name
    assert torch.equal(model.fusion.fc_out.weight, trained.fusion.fc_out.weight)  # the head is not re-initialised


def test_relearning_clusters_each_modalitys_own_encoder_features(monkeypatch):
    """What k-means sees for each of three modalities: that modality's encoder features (eval mode) of the training
    clips, then of the held-out clips, with their labels."""
    from utils.methods import relearning
    modalities = THREE
    model = tiny_classifier(3, "concat", modalities=modalities)
    method = build(args_of("relearning", "--relearn_every", "1", "--relearn_holdout", "0.5", modalities=modalities),
                   modalities)
    method.configure_model(model)
    data = clips(12, modalities=modalities)
    method.split_train(data, 0)
    method.forward_batches = passes_over(model, modalities, batch_size=5)
    seen = []
    monkeypatch.setattr(relearning, "cluster_purity", lambda feats, labels, k: seen.append((feats, labels)) or 0.5)
    method.start_epoch(3, model, None)
    model.eval()
    for part, indices in enumerate((method.train_set.indices, method.holdout.indices)):
        inputs, labels = to_device(default_collate([data[i] for i in indices]), modalities, torch.device("cpu"))
        with torch.no_grad():
            enc = model.encode(inputs)
        for k, m in enumerate(names(modalities)):
            feats, got = seen[2 * k + part]
            assert np.allclose(feats, enc[m].numpy(), atol=1e-5) and np.array_equal(got, labels.numpy()), (m, part)


def test_relearning_clusters_train_and_held_out_clips_as_the_test_transform_gives_them(demo_root, monkeypatch):
    """The features k-means sees: an eval-mode forward of the clips with the test-time transform (the authors'
    my_train / val modes), for the training clips as for the held-out ones; not the augmented clips."""
    from dataset import CremadDataset, load_splits, resolve_class_list, resolve_frames_dir
    from utils import runner
    from utils.methods import relearning
    classes = resolve_class_list(demo_root, None)
    samples = load_splits(demo_root, classes, None, None).train
    opts = dict(frames_dir=resolve_frames_dir(demo_root, None), image_size=24, audio_seconds=0.5)
    train = CremadDataset(demo_root, samples, train=True, **opts)
    plain = CremadDataset(demo_root, samples, train=False, **opts)  # the test-time transform, built as such
    model = tiny_classifier(len(classes), "concat").eval()

    def encoded(clips):
        inputs, labels = to_device(default_collate(clips), AV, torch.device("cpu"))
        with torch.no_grad():
            enc = model.encode(inputs)
        return enc["audio"].numpy(), enc["visual"].numpy(), labels.numpy()

    def clustered(view):
        method = build(args_of("relearning", "--relearn_every", "1", "--relearn_holdout", "0.34",
                               "--relearn_train_view", view))
        method.configure_model(model)
        method.split_train(train, 0)
        method.args.num_workers = 0
        method.forward_batches = lambda dataset, keys: runner.forward_batches(  # the runner's pass
            method.args, model, dataset, keys, torch.device("cpu"), Precision("off", torch.device("cpu")), AV)
        seen = []
        monkeypatch.setattr(relearning, "cluster_purity", lambda feats, labels, k: seen.append((feats, labels)) or 0.5)
        method.start_epoch(3, model, None)
        # per modality: (training clips, held-out clips)
        return {"audio": seen[0:2], "visual": seen[2:4]}, method.train_set.indices, method.holdout.indices

    seen, kept, held = clustered("clean")
    assert len(held) >= len(classes) and not set(kept) & set(held)
    clean_train, clean_held = encoded([plain[i] for i in kept]), encoded([plain[i] for i in held])
    drawn = encoded([train[(i, sample_seed(0, -3, j))] for j, i in enumerate(kept)])  # training_pass_keys' draws
    for m, col in (("audio", 0), ("visual", 1)):
        (f_train, y_train), (f_held, y_held) = seen[m]
        assert np.allclose(f_train, clean_train[col], atol=1e-5) and np.array_equal(y_train, clean_train[2]), m
        assert np.allclose(f_held, clean_held[col], atol=1e-5) and np.array_equal(y_held, clean_held[2]), m
    assert not np.allclose(seen["visual"][0][0], drawn[1], atol=1e-3)  # the crops and flips would show
    seen, _, _ = clustered("augmented")
    assert np.allclose(seen["visual"][0][0], drawn[1], atol=1e-5)
    assert np.allclose(seen["audio"][0][0], drawn[0], atol=1e-5)
    assert np.allclose(seen["visual"][1][0], clean_held[1], atol=1e-5)  # the held-out clips stay clean


# ---- valuation
def shapley_by_orders(right, names_):
    """Shapley values as the mean over every order in which the modalities join of each one's marginal value, with
    v(S) = |S| if the prediction from S alone is right (`right`: frozenset -> 0/1), v(empty) = 0; in fractions,
    rounded to float once."""
    def value(s):
        return len(s) * int(right[frozenset(s)]) if s else 0
    phi = {m: Fraction(0) for m in names_}
    orders = list(permutations(names_))
    for order in orders:
        for i, m in enumerate(order):
            phi[m] += Fraction(value(order[:i + 1]) - value(order[:i]), len(orders))
    return {m: float(v) for m, v in phi.items()}


def test_contributions_are_the_authors_values():
    table = torch.tensor([[b, a, v] for b in (0, 1) for a in (0, 1) for v in (0, 1)])
    phi = contributions({("audio", "visual"): table[:, 0], ("audio",): table[:, 1], ("visual",): table[:, 2]},
                        ("audio", "visual"))
    for (b, a, v), pa, pv in zip(table.tolist(), phi["audio"].tolist(), phi["visual"].tolist()):
        value_all = 2.0 if b else 0.0
        assert (pa, pv) == ((a + value_all - v) / 2.0, (v + value_all - a) / 2.0)
    assert [sample_copies(x) for x in (-0.5, 0.0, 0.5, 1.0, 1.5)] == [3, 2, 1, 0, 0]


def test_contributions_of_three_modalities_are_their_shapley_values():
    """Every pattern of right / wrong over the 7 non-empty sets of three modalities, against the mean marginal
    value over the 6 orders; a clip that every set gets right gives each modality 1, as for two."""
    modalities = ("x", "y", "z")
    sets = subsets(modalities)
    assert sets == [("x", "y", "z"), ("x",), ("y",), ("z",), ("x", "y"), ("x", "z"), ("y", "z")]
    table = torch.tensor([[(k >> i) & 1 for i in range(len(sets))] for k in range(2 ** len(sets))])
    phi = contributions({s: table[:, i] for i, s in enumerate(sets)}, modalities)
    for row, *values in zip(table.tolist(), *(phi[m].tolist() for m in modalities)):
        expected = shapley_by_orders({frozenset(s): r for s, r in zip(sets, row)}, modalities)
        assert values == [expected[m] for m in modalities], row  # both the exact value, rounded once
    assert [phi[m][-1].item() for m in modalities] == [1.0, 1.0, 1.0]  # exactly: no copies


def test_sample_level_copies_train_the_weaker_modality_alone():
    entries = sample_level_entries([torch.tensor([0.5, 1.5, -0.5]), torch.tensor([1.0, 0.0, 1.5])])
    # every clip once, then clip 0: one audio-alone copy (visual dropped = 2); clip 1: two visual-alone
    # copies (audio dropped = 1); clip 2: three audio-alone copies
    assert entries == [(0, 0), (1, 0), (2, 0), (0, 2), (1, 1), (1, 1), (2, 2), (2, 2), (2, 2)]
    # three modalities: the flag holds a bit per dropped modality (x alone drops y and z: 2 + 4)
    assert [alone(k, 3) for k in range(3)] == [6, 5, 3]
    entries = sample_level_entries([torch.tensor([0.5, 1.0]), torch.tensor([1.5, 0.0]), torch.tensor([-0.5, 1.2])])
    assert entries == [(0, 0), (1, 0), (0, 6), (0, 3), (0, 3), (0, 3), (1, 5), (1, 5)]


def test_modality_level_resamples_by_the_gap():
    """Their rule (modality_level.py, dataloader.py): gap_m = 1 - mean phi_m over int(ratio N) clips drawn with
    replacement (one draw for both modalities), int(|gap_a - gap_v| / 3 x 2 x alpha x N) copies of clips drawn
    with replacement, each training the modality with the larger gap alone (flag 2 drops visual, 1 drops audio)."""
    phi = np.random.default_rng(0).integers(-1, 4, 100) / 2  # values in {-0.5, ..., 1.5}
    for weaker, alpha in (("visual", 1.0), ("audio", 1.0), ("visual", 0.5)):
        phi_a, phi_v = (phi, phi - 0.5) if weaker == "visual" else (phi - 0.5, phi)  # one part: gaps 0.5 apart
        entries, (gap_a, gap_v) = modality_level_entries([phi_a, phi_v], 0.2, alpha, np.random.RandomState(3))
        assert abs(gap_a - gap_v) == pytest.approx(0.5)
        assert 40 * (1 - gap_a) == pytest.approx(round(40 * (1 - gap_a)))  # a mean of 20 values in steps of 0.5
        assert entries[:100] == [(i, 0) for i in range(100)]  # every clip once
        copies = entries[100:]
        assert len(copies) == int(0.5 / 3 * 2 * alpha * 100)  # 33, then 16
        assert {flag for _, flag in copies} == {1 if weaker == "visual" else 2}  # the weaker modality trains alone
        assert len({i for i, _ in copies}) < len(copies) and all(0 <= i < 100 for i, _ in copies)  # with replacement
    # and the draws are np.random's, in their order (the part, then the copies), from the seeded RandomState
    rng = np.random.RandomState(3)
    part = rng.choice(100, 20)
    assert gap_a == pytest.approx(1 - phi_a[part].mean())
    assert [i for i, _ in copies] == rng.choice(100, 16).tolist()
    entries, _ = modality_level_entries([phi, phi], 0.2, 1.0, np.random.RandomState(3))  # equal gaps: no copy
    assert entries == [(i, 0) for i in range(100)]


def test_modality_level_of_three_modalities():
    """BalanceBenchmark's spread for M modalities: the sum of |gap_m - gap_k| over ordered pairs / M!; the copies
    train the modality with the largest gap alone."""
    phi = np.random.default_rng(1).integers(-1, 4, 60) / 2
    phis = [phi, phi - 0.5, phi - 0.2]  # gaps g, g + 0.5, g + 0.2: y is the weakest
    entries, gaps = modality_level_entries(phis, 0.2, 1.0, np.random.RandomState(4))
    assert gaps[1] - gaps[0] == pytest.approx(0.5) and gaps[2] - gaps[0] == pytest.approx(0.2)
    spread = 2 * (0.5 + 0.2 + 0.3) / 6
    copies = entries[60:]
    assert entries[:60] == [(i, 0) for i in range(60)] and len(copies) == int(spread / 3 * 2 * 60)
    assert {flag for _, flag in copies} == {alone(1, 3)} == {5}  # y alone: x and z dropped
    rng = np.random.RandomState(4)
    part = rng.choice(60, 12)
    assert gaps[0] == pytest.approx(1 - phi[part].mean())
    assert [i for i, _ in copies] == rng.choice(60, len(copies)).tolist()


def test_the_sampler_draws_entries_with_their_own_seeds_and_flags():
    sampler = SeededSampler(list(range(5)), seed=7)
    sampler.set_epoch(3)
    plain = list(sampler)
    assert sorted(plain) == sorted((i, sample_seed(7, 3, i)) for i in range(5))
    entries = [(i, 0) for i in range(5)] + [(1, 2), (1, 2), (4, 1)]
    sampler.set_entries(entries)
    keys = list(sampler)
    assert sorted(keys) == sorted((i, sample_seed(7, 3, j), flag) for j, (i, flag) in enumerate(entries))
    halves = []
    for rank in (0, 1):
        shard = SeededSampler(list(range(5)), seed=7, num_replicas=2, rank=rank)
        shard.set_epoch(3)
        shard.set_entries(entries)
        halves += list(shard)
    assert sorted(halves) == sorted(keys)  # two processes draw the epoch one process draws
    sampler.set_entries(None)
    assert list(sampler) == plain
    assert [len(b) for b in TrainBatches(sampler, 2, drop_single=True)] == [2, 2]  # a last batch of one is left out
    assert len(TrainBatches(sampler, 2, drop_single=True)) == 2 and len(TrainBatches(sampler, 2, False)) == 3


@pytest.mark.parametrize("modalities,flags,kept", [
    (AV, [0, 1, 2, 0], {"audio": [1, 0, 1, 1], "visual": [1, 1, 0, 1]}),  # sample 1 without audio, 2 without visual
    (THREE, [0, 6, 5, 3], {"x": [1, 1, 0, 0], "y": [1, 0, 1, 0], "z": [1, 0, 0, 1]}),  # samples 1-3: x, y, z alone
], ids=["av", "three"])
def test_a_copy_trains_without_the_dropped_modalitys_features(modalities, flags, kept):
    flagged = FlaggedSamples(clips(4, modalities=modalities))
    n = len(modalities)
    assert flagged[(2, 5, 1)][n + 1] == 1 and len(flagged[2]) == n + 2 and flagged[2][n + 1] == 0
    model = tiny_classifier(3, "concat", modalities=modalities)
    method = build(args_of("sample_level", modalities=modalities), modalities)
    ref = copy.deepcopy(model)
    inputs, labels = batch(modalities=modalities)
    step = Step(model, model, torch.optim.SGD(model.parameters(), lr=0.5), Precision("off", torch.device("cpu")),
                inputs, labels, 6, 0, 1, torch.tensor(flags))
    method.train_step(step)
    enc = ref.encode(inputs)
    enc = {m: enc[m] * torch.tensor(kept[m], dtype=torch.float32)[:, None] for m in names(modalities)}
    loss = F.cross_entropy(ref.head(enc).logits, labels)
    grads = torch.autograd.grad(loss, list(ref.parameters()))
    for (name, p), q, g in zip(model.named_parameters(), ref.parameters(), grads):
        assert torch.allclose(p, q - 0.5 * g, atol=1e-6), name
    assert model.feature_transform is None


@pytest.mark.parametrize("modalities", [AV, THREE], ids=["av", "three"])
def test_valuation_scores_each_clip_from_one_pass(modalities):
    model = tiny_classifier(3, "concat", modalities=modalities)
    method = build(args_of("sample_level", "--valuation_warmup", "1", modalities=modalities), modalities)
    method.split_train(clips(8, modalities=modalities), 0)
    method.forward_batches = passes_over(model, modalities, batch_size=3)
    assert method.start_epoch(1, model, None) == {} and method.train_entries(1) is None  # warm-up
    record = method.start_epoch(2, model, None)
    inputs, labels = to_device(default_collate([method.train_set[i] for i in range(8)]), modalities,
                               torch.device("cpu"))
    right = {}
    with torch.no_grad():
        enc = model.encode(inputs)
        for size in range(1, len(modalities) + 1):
            for s in combinations(names(modalities), size):  # each set alone, the others' features zeroed
                logits = model.head({m: x if m in s else 0 * x for m, x in enc.items()}).logits
                right[frozenset(s)] = (logits.argmax(1) == labels).tolist()
    phis = [shapley_by_orders({s: r[i] for s, r in right.items()}, names(modalities)) for i in range(8)]
    phi = {m: torch.tensor([p[m] for p in phis], dtype=torch.float64) for m in names(modalities)}
    assert method.train_entries(2) == sample_level_entries([phi[m] for m in names(modalities)])
    for m in names(modalities):
        assert record[f"valuation_phi_{m}"] == pytest.approx(phi[m].mean().item())
        assert record[f"valuation_copies_{m}_alone"] == sum(sample_copies(x) for x in phi[m].tolist())
