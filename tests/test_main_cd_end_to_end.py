"""main_CD.py end to end on tiny demo data: train, evaluate best.pt, resume."""
import json
import math

import pytest
import torch

import main_CD
from conftest import TINY_FLAGS
from helpers.stopped_runs import stop_after_first_step


def read_metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_run_directory_holds_everything(trained_run):
    names = {p.name for p in trained_run.iterdir()}
    assert {"args.json", "metrics.jsonl", "last.pt", "best.pt", "tensorboard"} <= names
    assert any(p.name.startswith("events.out.tfevents") for p in (trained_run / "tensorboard").iterdir())
    assert not [n for n in names if n.endswith(".tmp")]
    args = json.loads((trained_run / "args.json").read_text())
    assert args["mmcosine"] is True and args["fusion_method"] == "concat" and args["scaling"] == 10.0


def test_metrics_have_every_per_epoch_quantity(trained_run):
    rows = read_metrics(trained_run)
    assert [r["epoch"] for r in rows] == [1, 2]
    for split in ("train", "test"):
        for key in ("loss", "loss_a", "loss_v", "acc", "acc_a", "acc_v", "gt_logit_a", "gt_logit_v"):
            assert f"{split}_{key}" in rows[-1]
    assert rows[-1]["test_count"] == 6 and rows[-1]["train_count"] == 18
    # MMCosine bounds every uni-modal logit by the scale.
    assert abs(rows[-1]["test_gt_logit_a"]) <= 10 and abs(rows[-1]["test_gt_logit_v"]) <= 10
    assert rows[-1]["weight_norm_a"] > 0 and rows[-1]["weight_norm_v"] > 0


def test_evaluating_best_reproduces_logged_accuracy(trained_run, demo_root, capsys):
    rows = read_metrics(trained_run)
    best = max(rows, key=lambda r: r["test_acc"])
    stats = main_CD.main(["--ckpt_path", str(trained_run / "best.pt"), "--data_root", str(demo_root), *TINY_FLAGS])
    assert stats["acc"] == pytest.approx(best["test_acc"])
    assert stats["acc_a"] == pytest.approx(best["test_acc_a"])
    assert stats["acc_v"] == pytest.approx(best["test_acc_v"])
    assert stats["loss"] == pytest.approx(best["test_loss"], rel=1e-5)
    assert "audio" in capsys.readouterr().out


def test_resume_gives_the_same_final_metrics(demo_root, tmp_path):
    flags = ["--train", "--data_root", str(demo_root), "--fusion_method", "gated", "--mmcosine", "False",
             "--lr_decay_step", "2", *TINY_FLAGS]
    main_CD.main([*flags, "--run_dir", str(tmp_path / "straight"), "--epochs", "3"])
    main_CD.main([*flags, "--run_dir", str(tmp_path / "stopped"), "--epochs", "2"])
    # Resume with only the run dir and the new epoch count: everything else comes from args.json.
    main_CD.main(["--resume", str(tmp_path / "stopped"), "--epochs", "3", "--no_progress"])
    straight, resumed = read_metrics(tmp_path / "straight"), read_metrics(tmp_path / "stopped")
    assert [r["epoch"] for r in resumed] == [1, 2, 3]
    for key in ("train_loss", "test_loss", "test_acc", "test_acc_a", "test_acc_v", "lr", "weight_norm_a"):
        assert resumed[-1][key] == pytest.approx(straight[-1][key], rel=1e-5, abs=1e-6), key
    a = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "stopped" / "last.pt", weights_only=True)["model"]
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-5) for k in a)


def test_a_new_run_never_overwrites_an_old_one(trained_run, demo_root, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main_CD.main(["--train", "--data_root", str(demo_root), "--run_dir", str(trained_run), "--epochs", "1",
                      *TINY_FLAGS])
    assert exit_info.value.code == 2
    assert "--resume" in capsys.readouterr().err


def test_both_fused_accuracies_are_logged_and_either_can_pick_best(trained_run, demo_root, tmp_path):
    rows = read_metrics(trained_run)
    for row in rows:  # MMCosine: the trained cosine sum and the release's plain fc_out output
        assert 0 <= row["test_acc_linear"] <= 100 and 0 <= row["train_acc_linear"] <= 100
    run = tmp_path / "linear"
    main_CD.main(["--train", "--data_root", str(demo_root), "--run_dir", str(run), "--epochs", "2", "--mmcosine", "True",
                  "--best_metric", "acc_linear", *TINY_FLAGS])
    rows = read_metrics(run)
    chosen = max(rows, key=lambda r: r["test_acc_linear"])
    assert rows[-1]["best_epoch"] == chosen["epoch"] and rows[-1]["best_acc_linear"] == chosen["test_acc_linear"]
    stats = main_CD.main(["--ckpt_path", str(run / "best.pt"), "--data_root", str(demo_root), *TINY_FLAGS])
    assert stats["acc_linear"] == pytest.approx(chosen["test_acc_linear"])


def test_evaluation_takes_every_input_setting_from_the_checkpoint(trained_run, demo_root, capsys):
    """The run used 32-pixel frames and 0.5 s of audio; evaluating with none of those flags typed must
    give the logged numbers, and a typed value that differs is said."""
    rows = read_metrics(trained_run)
    best = max(rows, key=lambda r: r["test_acc"])
    stats = main_CD.main(["--ckpt_path", str(trained_run / "best.pt"), "--no_progress"])  # data root too
    assert stats["acc"] == pytest.approx(best["test_acc"]) and stats["loss"] == pytest.approx(best["test_loss"], rel=1e-5)
    assert "differs" not in capsys.readouterr().out
    main_CD.main(["--ckpt_path", str(trained_run / "best.pt"), "--data_root", str(demo_root), "--image_size", "48",
                  "--no_progress"])
    out = capsys.readouterr().out
    assert "note: --image_size 48 differs from the run's own 32" in out and out.count("note:") == 1


STATEFUL = {"pmr": [], "inforeg": [], "agm": [], "cml": [], "mla": ["--mla_projection", "replace"],
            "reconboost": ["--reconboost_stage_epochs", "1", "--reconboost_rectify_epochs", "1"],
            "lfm": ["--lfm_holdout_clips", "4"], "modality_level": ["--valuation_warmup", "1"]}


@pytest.mark.parametrize("method", sorted(STATEFUL))
def test_methods_with_state_resume_exactly(method, demo_root, tmp_path, monkeypatch, capsys):
    """Prototypes, Fisher traces, running scores, projectors, stage plans, loss weights, resampled train sets
    and per-epoch draws survive a resume, between epochs and inside one: 2 epochs straight equal 1 epoch, a
    resume stopped by SIGTERM after the second epoch's first step, and a resume for the rest."""
    flags = ["--train", "--data_root", str(demo_root), "--method", method, *TINY_FLAGS, "--learning_rate", "0.001",
             *STATEFUL[method]]
    # The resampled train set's copies are keys the loader's workers read: two workers draw what none do.
    workers = ["--num_workers", "2"] if method == "modality_level" else []
    main_CD.main([*flags, "--run_dir", str(tmp_path / "straight"), "--epochs", "2", *workers])
    main_CD.main([*flags, "--run_dir", str(tmp_path / "stopped"), "--epochs", "1"])
    with monkeypatch.context() as patch:
        stop_after_first_step(patch)
        with pytest.raises(SystemExit) as stopped:
            main_CD.main(["--resume", str(tmp_path / "stopped"), "--epochs", "2", "--no_progress"])
    partial = torch.load(tmp_path / "stopped" / "last.pt", map_location="cpu", weights_only=True)["partial"]
    assert stopped.value.code == 143 and (partial["epoch"], partial["steps"]) == (2, 1)
    assert f"terminated (SIGTERM) in epoch 2 after step 1 of {partial['steps_in_epoch']}" in capsys.readouterr().err
    main_CD.main(["--resume", str(tmp_path / "stopped"), "--epochs", "2", "--no_progress"])
    straight, resumed = read_metrics(tmp_path / "straight"), read_metrics(tmp_path / "stopped")
    assert math.isfinite(straight[-1]["train_loss"])
    for key, value in straight[-1].items():
        if isinstance(value, float) and not key.endswith("seconds"):
            # nan_ok: two epochs on 18 clips leave BatchNorm's running statistics so rough that the evaluation
            # logits can overflow (joint training's test loss reaches ~1e29 here too); equal NaNs still match.
            assert resumed[-1][key] == pytest.approx(value, rel=1e-5, abs=1e-6, nan_ok=True), key
