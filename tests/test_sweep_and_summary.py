"""scripts/sweep.sh runs the grid end to end; scripts/summarize.py aggregates it correctly."""
import csv
import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, TINY_FLAGS

sys.path.insert(0, str(ROOT / "scripts"))
import summarize  # noqa: E402


def fake_run(root, name, method, fusion, mmcosine, scaling, seed, accs, vals=None):
    run = root / name
    run.mkdir(parents=True)
    (run / "args.json").write_text(json.dumps({"method": method, "fusion_method": fusion, "mmcosine": mmcosine,
                                               "scaling": scaling, "random_seed": seed}))
    rows = [{"epoch": e + 1, "test_acc": a, "test_acc_a": a / 2, "test_acc_v": a / 3, "test_f1": a - 1,
             "test_acc_linear": a - 10} for e, a in enumerate(accs)]
    for row, val in zip(rows, vals or []):
        row.update(val_acc=val, val_acc_linear=100 - val)
    (run / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_summary_groups_seeds_and_takes_each_runs_best_epoch(tmp_path, capsys):
    fake_run(tmp_path, "a0", "joint", "concat", True, 10.0, 0, [50, 70, 60])
    fake_run(tmp_path, "a1", "joint", "concat", True, 10.0, 1, [40, 55, 80])
    fake_run(tmp_path, "b0", "joint", "concat", True, 20.0, 0, [30, 35, 33])
    fake_run(tmp_path, "c0", "joint", "concat", False, 10.0, 0, [45, 44, 43])
    runs = summarize.main([str(tmp_path)])
    out = capsys.readouterr().out
    expected = f"{statistics.mean([70, 80]):.2f} ± {statistics.stdev([70, 80]):.2f}"
    last = f"{statistics.mean([60, 80]):.2f} ± {statistics.stdev([60, 80]):.2f}"
    assert f"| joint | concat | yes | 10 | 0,1 | – | {expected} | {last} |" in out  # no validation: no first column
    assert f"| {statistics.mean([35, 40]):.2f} ± {statistics.stdev([35, 40]):.2f} |" in out  # audio at best epochs
    assert "| joint | concat | no |  | 0 | – | 45.00 | 43.00 |" in out  # baseline: scaling plays no part
    rows = list(csv.DictReader(open(tmp_path / "summary.csv")))
    assert len(rows) == 4 and {r["best_epoch"] for r in rows if r["run"].endswith("a1")} == {"3"}
    assert (tmp_path / "scaling.png").read_bytes()[:4] == b"\x89PNG"
    assert len(runs) == 4


def test_three_selection_protocols_side_by_side(tmp_path, capsys):
    # Validation peaks at epoch 1, test at epoch 3: the honest number is the test at epoch 1.
    fake_run(tmp_path, "v0", "joint", "gated", True, 10.0, 0, [50, 60, 70, 65], vals=[90, 80, 70, 60])
    run = summarize.main([str(tmp_path)])[0]
    assert (run["at_best_val"], run["best_test"], run["last"], run["best_epoch"]) == (50, 70, 65, 1)
    assert run["selected_on"] == "val" and run["acc_a"] == 25  # audio at best.pt's (validation) epoch
    out = capsys.readouterr().out
    assert "| test acc at best val (%) | best test acc (%) | last-epoch acc (%) |" in out
    assert "| joint | gated | yes | 10 | 0 | 50.00 | 70.00 | 65.00 | 25.00 | 16.67 | 1 |" in out
    # The release's fused accuracy (fusion layer's plain output), selected on its own validation value.
    run = summarize.main([str(tmp_path), "--metric", "acc_linear"])[0]
    assert (run["at_best_val"], run["best_test"], run["last"], run["best_epoch"]) == (55, 60, 55, 4)
    assert "| test acc_linear at best val (%) |" in capsys.readouterr().out


def test_acc_linear_of_runs_that_never_logged_it_is_one_clear_error(tmp_path, capsys):
    run = tmp_path / "old"
    run.mkdir()
    (run / "args.json").write_text(json.dumps({"fusion_method": "concat", "mmcosine": True, "scaling": 10,
                                               "random_seed": 0}))
    (run / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "test_acc": 50.0}) + "\n")
    with pytest.raises(SystemExit) as exit_info:
        summarize.main([str(tmp_path), "--metric", "acc_linear"])
    assert exit_info.value.code == 2 and "logged no test_acc_linear" in capsys.readouterr().err


def test_sweep_runs_the_grid_records_a_failed_point_and_resumes(tmp_path, demo_root, capsys):
    """One grid: a plain point, a diverging one (s = 1e30) and an MMCosine point; the failure is recorded and
    the sweep goes on (exit 1); a rerun resumes the finished points and skips the failed one."""
    cmd = ["bash", "scripts/sweep.sh", "--out", str(tmp_path / "sweep"), "--mmcosine", "False True",
           "--scalings", "1e30 5", "--", "--data_root", str(demo_root), "--epochs", "1", *TINY_FLAGS]
    first = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    names = sorted(p.name for p in (tmp_path / "sweep").iterdir())
    assert names == ["concat-joint-mmcosineFalse-seed0", "concat-joint-mmcosineTrue-s1e30-seed0",
                     "concat-joint-mmcosineTrue-s5-seed0"]
    diverged, fine = tmp_path / "sweep" / names[1], tmp_path / "sweep" / names[2]
    assert first.returncode == 1 and "1 point(s) of the grid failed" in first.stderr
    assert (diverged / "FAILED").read_text().startswith("exit 3: error: non-finite loss")
    assert (fine / "last.pt").is_file()  # the next point ran
    args = json.loads((fine / "args.json").read_text())
    assert args["scaling"] == 5.0 and args["mmcosine"] is True
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 1 and "failed before (exit 3" in again.stdout and "skipped" in again.stdout
    assert again.stdout.count(": resuming (") == 2
    rows = [summarize.summarize_run(tmp_path / "sweep" / n) for n in (names[0], names[2])]
    assert all(r["epochs"] == 1 for r in rows)
    runs = summarize.main([str(tmp_path / "sweep")])
    out = capsys.readouterr().out
    assert len(runs) == 2 and "failed points, not in the table (1;" in out and str(diverged) in out


def test_sweep_rejects_unknown_options():
    proc = subprocess.run(["bash", "scripts/sweep.sh", "--scaling", "5"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown option --scaling" in proc.stderr


def test_summary_without_runs_is_one_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        summarize.main([str(tmp_path / "nowhere")])
    assert exit_info.value.code == 2 and "error: no run directories" in capsys.readouterr().err


def fake_vox_run(root, name, mmcosine, scaling, seed, eers):
    run = root / name
    run.mkdir(parents=True)
    (run / "args.json").write_text(json.dumps({"method": "joint", "fusion_method": "film", "mmcosine": mmcosine,
                                               "scaling": scaling, "random_seed": seed,
                                               "trial_lists": ["lists/Vox2-Test.csv", "lists/vox1_O.txt"]}))
    (run / "metrics.jsonl").write_text("".join(
        json.dumps({"epoch": e + 1, "test_eer": x, "test_min_dcf": x / 50, "test_eer_a": x + 5, "test_eer_v": x + 20,
                    "test_vox2_test_eer": x, "test_vox1_o_eer_a": 99.0}) + "\n"
        for e, x in enumerate(eers)))


def test_verification_runs_take_the_lowest_eer_and_get_their_own_table(tmp_path, capsys):
    fake_vox_run(tmp_path, "v0", True, 10.0, 0, [20.0, 8.0, 9.0])
    fake_vox_run(tmp_path, "v1", True, 10.0, 1, [12.0, 11.0, 6.0])
    fake_vox_run(tmp_path, "v2", True, 30.0, 0, [15.0, 14.0, 16.0])
    fake_run(tmp_path, "cd", "joint", "concat", False, 10.0, 0, [45, 44, 43])
    runs = summarize.main([str(tmp_path)])
    out = capsys.readouterr().out
    assert "| best EER (%) | minDCF | audio EER (%) | visual EER (%) | last-epoch EER (%) |" in out
    assert "| best test acc (%) |" in out
    eer = f"{statistics.mean([8, 6]):.2f} ± {statistics.stdev([8, 6]):.2f}"
    audio = f"{statistics.mean([13, 11]):.2f} ± {statistics.stdev([13, 11]):.2f}"  # at each run's best epoch
    assert f"| joint | film | yes | 10 | 0,1 | {eer} | " in out and f" | {audio} | " in out
    by_name = {Path(r["run"]).name: r for r in runs}
    assert by_name["v1"]["best_epoch"] == 3 and by_name["v1"]["min_dcf"] == pytest.approx(6 / 50)
    assert by_name["v2"]["eer_v"] == 34.0 and by_name["cd"]["kind"] == "accuracy"
    assert by_name["v1"]["last"] == 6.0 and by_name["v0"]["last"] == 9.0
    assert (tmp_path / "scaling_eer.png").read_bytes()[:4] == b"\x89PNG"
