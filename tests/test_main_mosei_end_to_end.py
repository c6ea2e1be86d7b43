"""main_MOSEI.py end to end on the demo pickles (dataset/demo_mosei.py): three modalities through sum and concat
fusion with MMCosine, best.pt chosen on the valid split, the checkpoint evaluated to the logged numbers (its data
settings taken from the checkpoint), per-modality statistics and Shapley values for text, audio and vision, and the
summary table and plots of the runs."""
import json
import math
import sys

import pytest
import torch

import main_MOSEI
from conftest import ROOT
from dataset.demo_mosei import write_mosei_demo

TINY = ["--seq_dim", "16", "--seq_heads", "2", "--seq_layers", "1", "--seq_ff", "32", "--batch_size", "16",
        "--no_progress"]
TAGS = ("text", "audio", "vision")
# sum: BalanceBenchmark's data (unaligned, zero counted positive); concat: the aligned file with MulT's 7 classes
RUNS = {"sum": ["--fusion_method", "sum"],
        "concat": ["--fusion_method", "concat", "--aligned", "True", "--labels", "seven", "--save_features", "True"]}


@pytest.fixture(scope="module")
def mosei_root(tmp_path_factory):
    return write_mosei_demo(tmp_path_factory.mktemp("mosei") / "MOSEI", n_train=96, seed=0)


@pytest.fixture(scope="module")
def runs(mosei_root, tmp_path_factory):
    folder = tmp_path_factory.mktemp("mosei_runs")
    for name, flags in RUNS.items():
        main_MOSEI.main(["--train", "--data_root", str(mosei_root), "--run_dir", str(folder / name), "--epochs", "2",
                         "--mmcosine", "True", *TINY, *flags])
    return {name: folder / name for name in RUNS}


def rows_of(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("fusion", list(RUNS))
def test_three_modalities_are_logged_and_best_pt_is_chosen_on_valid(fusion, runs):
    rows = rows_of(runs[fusion])
    last = rows[-1]
    for tag in TAGS:
        for split in ("train", "val", "test"):
            assert math.isfinite(last[f"{split}_acc_{tag}"]) and math.isfinite(last[f"{split}_gt_logit_{tag}"])
        for key in ("shapley", "loss", "f1", "angle_centre"):
            assert math.isfinite(last[f"test_{key}_{tag}"]), key
        assert math.isfinite(last[f"weight_norm_{tag}"])
    for kept in ("none", "text", "audio+vision", "text+vision"):
        assert 0 <= last[f"test_acc_keep_{kept}"] <= 100
    assert sum(last[f"test_shapley_{t}"] for t in TAGS) == pytest.approx(last["test_acc"] - last["test_acc_keep_none"])
    assert not any(key.endswith(("_a", "_v")) for key in last)
    best = max(rows, key=lambda r: (r["val_acc"], -r["epoch"]))  # the first epoch with the best validation accuracy
    assert last["best_split"] == "val" and last["best_epoch"] == best["epoch"]
    assert last["best_acc"] == best["val_acc"] and last["best_test_acc"] == best["test_acc"]
    ckpt = torch.load(runs[fusion] / "best.pt", weights_only=False)
    assert ckpt["epoch"] == best["epoch"] and ckpt["model_config"]["scaling"] == 15.0  # BalanceBenchmark's s
    assert ckpt["model_config"]["dataset_modalities"] == list(TAGS)
    assert ckpt["args"]["optimizer"] == "adamw" and ckpt["args"]["weight_decay"] == 0.01


def test_a_short_run_learns_the_demo(runs):
    rows = rows_of(runs["sum"])
    assert rows[-1]["train_acc"] > 70 and max(r["test_acc"] for r in rows) > 65  # majority class: 52 % of the test split


@pytest.mark.parametrize("fusion", list(RUNS))
def test_best_pt_evaluates_to_the_logged_numbers(fusion, runs, mosei_root):
    rows = rows_of(runs[fusion])
    logged = next(r for r in rows if r["epoch"] == rows[-1]["best_epoch"])
    # --aligned / --labels / --seq_* are not typed: they come from the checkpoint
    stats = main_MOSEI.main(["--ckpt_path", str(runs[fusion] / "best.pt"), "--data_root", str(mosei_root),
                             "--no_progress"])
    for key in ("acc", "acc_text", "acc_audio", "acc_vision", "shapley_vision", "acc_keep_text+audio", "loss"):
        assert stats[key] == pytest.approx(logged[f"test_{key}"]), key
    if fusion == "concat":
        assert len(torch.load(runs[fusion] / "best.pt", weights_only=False)["model_config"]["classes"]) == 7


def test_summary_and_plots_of_the_runs(runs, tmp_path, capsys):
    sys.path.insert(0, str(ROOT / "scripts"))
    import plot_run
    import summarize
    summarize.main([str(runs["sum"]), str(runs["concat"]), "--csv", str(tmp_path / "s.csv"),
                    "--plot", str(tmp_path / "p.png")])
    out = capsys.readouterr().out
    assert "| text acc (%) | audio acc (%) | vision acc (%) |" in out and "test acc at best val (%)" in out
    header = (tmp_path / "s.csv").read_text().splitlines()[0].split(",")
    assert {"acc_text", "acc_audio", "acc_vision", "shapley_text", "shapley_vision"} <= set(header)
    written = {p.name for p in plot_run.plot_runs([runs["sum"], runs["concat"]], tmp_path / "plots")}
    assert {"accuracy.png", "shapley.png", "gt_logits.png", "angles.png", "concat_embedding.png"} <= written
