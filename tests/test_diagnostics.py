"""Balance diagnostics against direct computations, and the probe / plot scripts on a tiny run."""
import json
import math
import sys

import numpy as np
import pytest
import torch

from conftest import ROOT
from utils.metrics import EpochMeter, angle_stats, macro_f1

sys.path.insert(0, str(ROOT / "scripts"))
import linear_probe  # noqa: E402
import plot_run  # noqa: E402


def test_macro_f1_against_per_class_counting():
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    p[:120] = y[:120]
    f1s = []
    for k in range(4):
        tp = np.sum((p == k) & (y == k))
        precision, recall = tp / max(np.sum(p == k), 1), tp / max(np.sum(y == k), 1)
        f1s.append(0.0 if tp == 0 else 2 * precision * recall / (precision + recall))
    confusion = torch.zeros(4, 4)
    for t, q in zip(y, p):
        confusion[t, q] += 1
    assert macro_f1(confusion) == pytest.approx(100 * np.mean(f1s))


def test_angle_stats_against_a_loop():
    rng = np.random.default_rng(1)
    feat, labels, weight = rng.normal(size=(30, 5)), rng.integers(0, 3, 30), rng.normal(size=(3, 5))
    to_centre, to_weight = [], []
    for i in range(30):
        centre = feat[labels == labels[i]].mean(0)
        for target, out in ((centre, to_centre), (weight[labels[i]], to_weight)):
            cos = feat[i] @ target / (np.linalg.norm(feat[i]) * np.linalg.norm(target))
            out.append(math.degrees(math.acos(np.clip(cos, -1, 1))))
    stats = angle_stats(torch.tensor(feat), torch.tensor(labels), torch.tensor(weight))
    assert stats["angle_centre"] == pytest.approx(np.mean(to_centre))
    assert stats["angle_centre_std"] == pytest.approx(np.std(to_centre))
    assert stats["angle_weight"] == pytest.approx(np.mean(to_weight))
    assert stats["angle_weight_std"] == pytest.approx(np.std(to_weight))


def test_meter_f1_and_accuracy_agree_with_the_predictions():
    from models import ModalOutput
    torch.manual_seed(0)
    logits = torch.randn(3, 10, 4)
    labels = torch.randint(0, 4, (10,))
    meter = EpochMeter({"audio": "a", "visual": "v"})
    meter.update(ModalOutput({"audio": torch.zeros(10, 2), "visual": torch.zeros(10, 2)},
                             {"audio": logits[1], "visual": logits[2]}, logits[0]), labels)
    stats = meter.result()
    for head, lg in zip(("", "_a", "_v"), logits):
        assert stats[f"acc{head}"] == pytest.approx(100 * (lg.argmax(1) == labels).float().mean().item())
        confusion = torch.zeros(4, 4)
        for t, q in zip(labels, lg.argmax(1)):
            confusion[t, q] += 1
        assert stats[f"f1{head}"] == pytest.approx(macro_f1(confusion))


def test_logged_angles_match_the_saved_features(trained_run):
    rows = [json.loads(l) for l in (trained_run / "metrics.jsonl").read_text().splitlines()]
    best = max(rows, key=lambda r: r["test_acc"])
    saved = torch.load(trained_run / "features_best.pt", weights_only=True)
    assert saved["feat_a"].shape == (6, 512) and saved["labels"].shape == (6,)
    for suffix in ("_a", "_v"):
        stats = angle_stats(saved[f"feat{suffix}"], saved["labels"], saved[f"W{suffix}"])
        assert best[f"test_angle_centre{suffix}"] == pytest.approx(stats["angle_centre"], rel=1e-5)
        assert best[f"test_angle_weight{suffix}"] == pytest.approx(stats["angle_weight"], rel=1e-5)
    assert 0 <= best["test_f1"] <= 100 and 0 <= best["train_f1_v"] <= 100


def test_linear_probe_freezes_the_checkpoint_encoder(trained_run):
    ckpt = trained_run / "best.pt"
    before = ckpt.read_bytes()
    result, test_features = linear_probe.probe(ckpt, "audio", epochs=50)
    # concat fusion passes encoder features through unchanged: the probe saw the checkpoint's encoder.
    saved = torch.load(trained_run / "features_best.pt", weights_only=True)
    assert torch.allclose(test_features, saved["feat_a"], atol=1e-4)
    assert ckpt.read_bytes() == before
    written = json.loads((trained_run / "linear_probe_audio_best.json").read_text())
    assert written == result and written["test_count"] == 6 and written["train_count"] == 18
    assert 0 <= written["test_acc"] <= 100
    assert written["train_acc"] == 100.0  # 18 points in 512 dimensions: a linear probe separates them
    assert linear_probe.main(["--ckpt", str(ckpt), "--modality", "visual", "--epochs", "20"]) == 0


def test_plot_run_writes_every_figure(trained_run, tmp_path):
    written = plot_run.plot_runs([trained_run, trained_run], tmp_path / "plots")
    names = {p.name for p in written}
    assert {"accuracy.png", "gt_logits.png", "weight_norms.png", "angles.png",
            "run_angle_hist.png", "run_embedding.png"} <= names
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
