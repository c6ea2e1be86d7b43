"""Three modalities end to end, on a generated dataset (tests/helpers/three_modalities.py) through the real runner:
per-modality statistics and Shapley contributions, evaluation of the checkpoint, summaries and plots, and the
one-line refusals of what is defined for two modalities only."""
import json
import math
import sys

import pytest
import torch

from conftest import ROOT
from helpers import three_modalities as three
from utils.contributions import shapley_values
from utils.methods import METHODS

TINY = ["--no_progress", "--learning_rate", "0.05", "--batch_size", "6"]


@pytest.fixture(scope="module")
def three_root(tmp_path_factory):
    return three.write_three_modality_demo(tmp_path_factory.mktemp("three") / "data")


@pytest.fixture(scope="module")
def three_run(three_root, tmp_path_factory):
    run = tmp_path_factory.mktemp("three_runs") / "sum_mmcosine"
    three.main(["--train", "--data_root", str(three_root), "--run_dir", str(run), "--epochs", "2",
                "--fusion_method", "sum", "--mmcosine", "True", "--save_features", "True", *TINY])
    return run


def rows_of(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_every_statistic_is_logged_per_modality(three_run):
    row = rows_of(three_run)[-1]
    for tag in "xyz":
        for key in ("acc", "loss", "f1", "gt_logit", "angle_centre", "angle_weight", "shapley"):
            assert math.isfinite(row[f"test_{key}_{tag}"]), key
        assert math.isfinite(row[f"train_acc_{tag}"]) and math.isfinite(row[f"weight_norm_{tag}"])
    for kept in ("none", "x", "y", "z", "x+y", "x+z", "y+z"):
        assert 0 <= row[f"test_acc_keep_{kept}"] <= 100
    assert not any(key.endswith(("_a", "_v")) for key in row)


def test_shapley_values_come_from_the_subset_accuracies(three_run):
    row = rows_of(three_run)[-1]
    accuracy = {(): row["test_acc_keep_none"], ("x", "y", "z"): row["test_acc"]}
    for kept in ("x", "y", "z", "x+y", "x+z", "y+z"):
        accuracy[tuple(kept.split("+"))] = row[f"test_acc_keep_{kept}"]
    # written out: phi_x = 1/3 [v(x) - v()] + 1/6 [v(xy) - v(y)] + 1/6 [v(xz) - v(z)] + 1/3 [v(xyz) - v(yz)]
    v = accuracy
    phi_x = ((v[("x",)] - v[()]) / 3 + (v[("x", "y")] - v[("y",)]) / 6 + (v[("x", "z")] - v[("z",)]) / 6
             + (v[("x", "y", "z")] - v[("y", "z")]) / 3)
    assert row["test_shapley_x"] == pytest.approx(phi_x)
    assert sum(row[f"test_shapley_{t}"] for t in "xyz") == pytest.approx(row["test_acc"] - row["test_acc_keep_none"])
    assert shapley_values(accuracy, ("x", "y", "z"))["x"] == pytest.approx(phi_x)


def test_subset_accuracy_zeroes_the_encoder_features(three_run, three_root):
    """acc_keep_x is the fused accuracy with y's and z's encoder features replaced by zeros, recomputed here."""
    from utils.build import build_model, match_checkpoint_architecture
    from utils.checkpoint import load_model_state
    ckpt = torch.load(three_run / "last.pt", weights_only=False)
    args = three.build_parser().parse_args(["--data_root", str(three_root)])
    for key, value in ckpt["args"].items():
        setattr(args, key, value)
    model = build_model(args, 3, three.SOURCE.encoders(args))
    match_checkpoint_architecture(model, ckpt["model_config"])
    load_model_state(model, ckpt["model"], "last.pt")
    model.eval()
    test = three.build_datasets(args, False).test
    correct = 0
    with torch.no_grad():
        for i in range(len(test)):
            x, y, z, label = test[i]
            enc = model.encode({"x": x[None], "y": three.MODALITIES[1].prepare(y[None]), "z": z[None]})
            enc = {"x": enc["x"], "y": torch.zeros_like(enc["y"]), "z": torch.zeros_like(enc["z"])}
            correct += int(model.head(enc).logits.argmax(1).item() == label)
    assert rows_of(three_run)[-1]["test_acc_keep_x"] == pytest.approx(100 * correct / len(test))


def test_the_checkpoint_evaluates_to_the_logged_numbers(three_run, three_root):
    stats = three.main(["--ckpt_path", str(three_run / "last.pt"), "--data_root", str(three_root), "--no_progress"])
    row = rows_of(three_run)[-1]
    for key in ("acc", "acc_x", "acc_z", "shapley_y", "acc_keep_x+z"):
        assert stats[key] == pytest.approx(row[f"test_{key}"])


def test_summary_and_plots_read_three_modalities(three_run, tmp_path, capsys):
    sys.path.insert(0, str(ROOT / "scripts"))
    import plot_run
    import summarize
    summarize.main([str(three_run), "--csv", str(tmp_path / "s.csv"), "--plot", str(tmp_path / "p.png")])
    out = capsys.readouterr().out
    assert "| x acc (%) | y acc (%) | z acc (%) |" in out and "x / y / z accuracy and best epoch" in out
    header = (tmp_path / "s.csv").read_text().splitlines()[0].split(",")
    assert {"acc_x", "acc_y", "acc_z", "shapley_x", "shapley_z"} <= set(header)
    written = {p.name for p in plot_run.plot_runs([three_run], tmp_path / "plots")}
    assert {"accuracy.png", "shapley.png", "gt_logits.png", f"{three_run.name}_embedding.png"} <= written


@pytest.mark.parametrize("flags,message", [
    (["--fusion_method", "film"], "--fusion_method film is defined for two modalities and this dataset has 3: use "
                                  "concat, sum"),
    (["--method", "audio_only"], "--method audio_only trains the audio encoder and this dataset has x, y, z"),
    (["--method", "unimodal"], "--method unimodal needs --modality, one of x, y, z"),
])
def test_what_needs_two_modalities_is_refused_in_one_line(flags, message, three_root, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        three.main(["--train", "--data_root", str(three_root), "--run_dir", str(tmp_path / "run"), *flags, *TINY])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_a_unimodal_baseline_on_any_modality(three_root, tmp_path):
    run = tmp_path / "z_only"
    three.main(["--train", "--data_root", str(three_root), "--run_dir", str(run), "--epochs", "1", "--modality", "z",
                *TINY])
    ckpt = torch.load(run / "last.pt", weights_only=True)
    assert ckpt["model_config"]["modalities"] == ["z"] and ckpt["model_config"]["dataset_modalities"] == ["x", "y", "z"]
    row = rows_of(run)[-1]
    assert row["test_acc_keep_z"] == pytest.approx(row["test_acc"])  # the other encoders never count


# Methods whose authors define them for two modalities: refused on three in one line. Every other method trains.
PAIRWISE_METHODS = {"ogm", "ogm_ge", "greedy", "pmr", "inforeg", "mbsd", "opm", "iprm"}
NEEDS_RUNS = {"umt", "ume", "mslr", "g2d"}  # trained on three from uni-modal runs: tests/test_methods.py
SHORT = {"opm": ["--opm_warmup", "0"], "remix": ["--remix_warmup", "0"], "dimml": ["--dimml_duc_start", "0"],
         "arl": ["--arl_start", "-1"], "sample_level": ["--valuation_warmup", "0"],
         "modality_level": ["--valuation_warmup", "0"], "lfm": ["--lfm_holdout_clips", "4"],
         "relearning": ["--relearn_every", "1", "--relearn_holdout", "0.4"], "aug": ["--aug_every", "1"]}


@pytest.mark.parametrize("method", sorted(set(METHODS) - NEEDS_RUNS - {"audio_only", "visual_only", "unimodal"}))
def test_every_method_trains_on_three_modalities_or_refuses_in_one_line(method, three_root, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["--train", "--data_root", str(three_root), "--run_dir", str(run), "--epochs", "1", "--method", method,
            "--mmcosine", "True", *TINY, *SHORT.get(method, [])]
    if method in PAIRWISE_METHODS:
        with pytest.raises(SystemExit) as exit_info:
            three.main(argv)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and err.count("\n") == 1, err
        assert f"--method {method} is defined for 2 modalities and this dataset has 3" in err
        assert not run.exists()
        return
    three.main(argv)
    row = rows_of(run)[-1]
    assert math.isfinite(row["train_loss"]) and all(f"test_acc_{m}" in row for m in "xyz")
