"""Re-learning and the valuation methods (sample / modality level), and the resampled train set they
need: each mechanism against a direct computation."""
import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import default_collate

from helpers.clips import Clips, passes_over
from models import AVClassifier
from test_staged_methods import args_of, batch
from utils.methods import build_method
from utils.methods.flagged import FlaggedSamples
from utils.methods.relearning import cluster_purity, purity
from utils.methods.step import Step
from utils.methods.valuation import contributions, modality_level_entries, sample_copies, sample_level_entries
from utils.precision import Precision
from utils.sampling import SeededSampler, TrainBatches
from utils.seed import sample_seed


def clips(n=12, classes=3):
    audio, visual, _ = batch(n)
    return Clips(audio, visual, torch.arange(n) % classes)


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
    method = build_method(args_of("relearning"))  # R 20, at most 3 times, after their epochs 20, 40, 60
    assert [e for e in range(1, 100) if method.relearns_before(e)] == [22, 42, 62]


def test_relearning_moves_each_encoder_toward_its_start_by_its_purity_gap():
    torch.manual_seed(0)
    model = AVClassifier(3, "concat")
    method = build_method(args_of("relearning", "--relearn_every", "1", "--relearn_holdout", "0.5"))
    method.configure_model(model)
    start = copy.deepcopy(model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1)  # as if trained
    trained = copy.deepcopy(model)
    method.split_train(clips(12), 0)
    method.forward_batches = passes_over(model)
    record = method.start_epoch(3, model, None)
    assert max(record["relearn_weight_audio"], record["relearn_weight_visual"]) > 0.1  # something moved
    for m in ("audio", "visual"):
        gap = abs(record[f"relearn_purity_train_{m}"] - record[f"relearn_purity_heldout_{m}"])
        w = math.tanh(3.0 * gap)
        assert record[f"relearn_weight_{m}"] == pytest.approx(w)
        for (name, p), p0, p1 in zip(getattr(model, f"{m}_encoder").named_parameters(),
                                     getattr(start, f"{m}_encoder").parameters(),
                                     getattr(trained, f"{m}_encoder").parameters()):
            assert torch.allclose(p, w * p0 + (1 - w) * p1, atol=1e-6), name
    assert torch.equal(model.fusion.fc_out.weight, trained.fusion.fc_out.weight)  # the head is not re-initialised


def test_relearning_clusters_train_and_held_out_clips_as_the_test_transform_gives_them(demo_root, monkeypatch):
    """The features k-means sees: an eval-mode forward of the clips with the test-time transform (the authors'
    my_train / val modes), for the training clips as for the held-out ones; not the augmented clips."""
    from dataset import CremadDataset, load_splits, resolve_class_list, resolve_frames_dir
    from utils import runner
    from utils.engine import to_device
    from utils.methods import relearning
    classes = resolve_class_list(demo_root, None)
    samples = load_splits(demo_root, classes, None, None).train
    opts = dict(frames_dir=resolve_frames_dir(demo_root, None), image_size=24, audio_seconds=0.5)
    train = CremadDataset(demo_root, samples, train=True, **opts)
    plain = CremadDataset(demo_root, samples, train=False, **opts)  # the test-time transform, built as such
    torch.manual_seed(0)
    model = AVClassifier(len(classes), "concat").eval()

    def encoded(clips):
        audio, visual, labels = to_device(default_collate(clips), torch.device("cpu"))
        with torch.no_grad():
            return (*(f.numpy() for f in model.encode(audio, visual)), labels.numpy())

    def clustered(view):
        method = build_method(args_of("relearning", "--relearn_every", "1", "--relearn_holdout", "0.34",
                                      "--relearn_train_view", view))
        method.configure_model(model)
        method.split_train(train, 0)
        method.args.num_workers = 0
        method.forward_batches = lambda dataset, keys: runner.forward_batches(  # the runner's pass
            method.args, model, dataset, keys, torch.device("cpu"), Precision("off", torch.device("cpu")))
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
def test_contributions_are_the_authors_values():
    table = torch.tensor([[b, a, v] for b in (0, 1) for a in (0, 1) for v in (0, 1)])
    phi_a, phi_v = contributions(table[:, 0], table[:, 1], table[:, 2])
    for (b, a, v), pa, pv in zip(table.tolist(), phi_a.tolist(), phi_v.tolist()):
        value_all = 2.0 if b else 0.0
        assert (pa, pv) == ((a + value_all - v) / 2.0, (v + value_all - a) / 2.0)
    assert [sample_copies(x) for x in (-0.5, 0.0, 0.5, 1.0, 1.5)] == [3, 2, 1, 0, 0]


def test_sample_level_copies_train_the_weaker_modality_alone():
    entries = sample_level_entries(torch.tensor([0.5, 1.5, -0.5]), torch.tensor([1.0, 0.0, 1.5]))
    # every clip once, then clip 0: one audio-alone copy (visual dropped = 2); clip 1: two visual-alone
    # copies (audio dropped = 1); clip 2: three audio-alone copies
    assert entries == [(0, 0), (1, 0), (2, 0), (0, 2), (1, 1), (1, 1), (2, 2), (2, 2), (2, 2)]


def test_modality_level_resamples_by_the_gap():
    """Their rule (modality_level.py, dataloader.py): gap_m = 1 - mean phi_m over int(ratio N) clips drawn with
    replacement (one draw for both modalities), int(|gap_a - gap_v| / 3 x 2 x alpha x N) copies of clips drawn
    with replacement, each training the modality with the larger gap alone (flag 2 drops visual, 1 drops audio)."""
    phi = np.random.default_rng(0).integers(-1, 4, 100) / 2  # values in {-0.5, ..., 1.5}
    for weaker, alpha in (("visual", 1.0), ("audio", 1.0), ("visual", 0.5)):
        phi_a, phi_v = (phi, phi - 0.5) if weaker == "visual" else (phi - 0.5, phi)  # one part: gaps 0.5 apart
        entries, (gap_a, gap_v) = modality_level_entries(phi_a, phi_v, 0.2, alpha, np.random.RandomState(3))
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


def test_a_copy_trains_without_the_dropped_modalitys_features():
    flagged = FlaggedSamples(clips(4))
    assert flagged[(2, 5, 1)][3] == 1 and len(flagged[2]) == 4 and flagged[2][3] == 0
    torch.manual_seed(0)
    model = AVClassifier(3, "concat")
    method = build_method(args_of("sample_level"))
    ref = copy.deepcopy(model)
    audio, visual, labels = batch()
    flags = torch.tensor([0, 1, 2, 0])
    step = Step(model, model, torch.optim.SGD(model.parameters(), lr=0.5), Precision("off", torch.device("cpu")),
                audio, visual, labels, 6, 0, 1, flags)
    method.train_step(step)
    enc_a, enc_v = ref.encode(audio, visual)
    enc_a = enc_a * torch.tensor([1.0, 0, 1, 1])[:, None]  # sample 1 trains without audio
    enc_v = enc_v * torch.tensor([1.0, 1, 0, 1])[:, None]  # sample 2 without visual
    loss = F.cross_entropy(ref.head(enc_a, enc_v).logits, labels)
    grads = torch.autograd.grad(loss, list(ref.parameters()))
    for (name, p), q, g in zip(model.named_parameters(), ref.parameters(), grads):
        assert torch.allclose(p, q - 0.5 * g, atol=1e-6), name
    assert model.feature_transform is None


def test_valuation_scores_each_clip_from_one_pass():
    torch.manual_seed(0)
    model = AVClassifier(3, "concat")
    method = build_method(args_of("sample_level", "--valuation_warmup", "1"))
    method.split_train(clips(8), 0)
    method.forward_batches = passes_over(model)
    assert method.start_epoch(1, model, None) == {} and method.train_entries(1) is None  # warm-up
    record = method.start_epoch(2, model, None)
    audio, visual, labels = default_collate([method.train_set[i] for i in range(8)])
    with torch.no_grad():
        enc_a, enc_v = model.encode(audio, visual)
        right = [(model.head(a, v).logits.argmax(1) == labels)
                 for a, v in ((enc_a, enc_v), (enc_a, 0 * enc_v), (0 * enc_a, enc_v))]
    phi_a, phi_v = contributions(*right)
    assert method.train_entries(2) == sample_level_entries(phi_a, phi_v)
    assert record["valuation_phi_audio"] == pytest.approx(phi_a.mean().item())
    assert record["valuation_copies_audio_alone"] == sum(sample_copies(x) for x in phi_a.tolist())
