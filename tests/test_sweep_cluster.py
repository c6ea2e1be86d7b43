"""scripts/sweep.py: a local pool and submitit's job arrays give a seeded point the numbers it gets alone, and a
preempted point is stopped with last.pt whole, requeued, and resumes to the numbers of an uninterrupted run."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, TINY_FLAGS
from helpers.av_reference import comparable

sys.path.insert(0, str(ROOT / "scripts"))
import sweep  # noqa: E402

POINT = ["--fusions", "concat", "--mmcosine", "True", "--scalings", "10", "--seeds", "0", "--cpus_per_run", "1"]


def children(pid: int):
    """The processes whose parent is `pid` (from /proc)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(proc.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


def rows(run_dir):
    return comparable([json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()])


@pytest.fixture(scope="module")
def alone(demo_root, tmp_path_factory):
    """The reference: the point run by itself (one process, one thread)."""
    out = tmp_path_factory.mktemp("alone")
    assert sweep.main(["--out", str(out), *POINT, "--", "--data_root", str(demo_root), "--epochs", "2",
                       *TINY_FLAGS]) == 0
    return rows(out / "concat-joint-mmcosineTrue-s10-seed0")


def test_a_local_pool_gives_each_point_its_numbers(alone, demo_root, tmp_path):
    out = tmp_path / "pool"
    code = sweep.main(["--out", str(out), *POINT, "--seeds", "0 1 2 3", "--jobs", "4", "--", "--data_root",
                       str(demo_root), "--epochs", "2", *TINY_FLAGS])
    assert code == 0 and rows(out / "concat-joint-mmcosineTrue-s10-seed0") == alone
    for seed in (1, 2, 3):  # the other seeds really ran
        assert rows(out / f"concat-joint-mmcosineTrue-s10-seed{seed}") != alone
        assert (out / "logs" / f"concat-joint-mmcosineTrue-s10-seed{seed}.out").is_file()


def test_a_point_of_several_processes_runs_under_torchrun(demo_root, tmp_path, capfd):
    """--gpus_per_run 2: the point's run is started by torchrun with two processes (gloo on this CPU machine)."""
    out = tmp_path / "ddp"
    code = sweep.main(["--out", str(out), *POINT, "--gpus_per_run", "2", "--", "--data_root", str(demo_root),
                       "--epochs", "1", *TINY_FLAGS, "--device", "cpu"])
    assert code == 0 and "2 process(es)" in capfd.readouterr().out
    assert rows(out / "concat-joint-mmcosineTrue-s10-seed0")[-1]["train_count"] == 18


def test_submitit_local_array_and_a_preempted_point_resume_to_the_same_numbers(alone, demo_root, tmp_path):
    """--cluster local runs the submitit path; a job interrupted as SLURM does before a preemption (submitit's
    simulated signal) stops its run with last.pt whole, is requeued and resumes exactly."""
    from utils.sweep_cluster import submit
    from utils.sweep_grid import Launch, grid
    out = tmp_path / "local"
    flags = ["--data_root", str(demo_root), "--epochs", "4", *TINY_FLAGS]
    point = grid(["concat"], ["joint"], ["True"], ["10"], ["0"])
    launch = Launch(entry=str(ROOT / "main_CD.py"), flags=flags, threads=1)
    _, jobs = submit(out, point, launch, False, "local", {"timeout_min": 30}, wait=False)
    run_dir = out / point[0].name
    deadline = time.time() + 300
    while time.time() < deadline and not (run_dir / "last.pt").is_file():  # the first epoch is written
        time.sleep(0.2)
    assert (run_dir / "last.pt").is_file()
    # what SLURM's warning before a preemption does: the job's task gets submitit's signal
    from submitit.local.local import LocalJobEnvironment
    task = children(int(jobs[0].job_id))[0]
    os.kill(task, LocalJobEnvironment._usr_sig())
    assert jobs[0].result() == "done"
    resumed = rows(run_dir)
    log = "".join(p.read_text() for p in (out / "submitit").rglob("*.out"))
    assert "resuming" in log  # it was stopped and requeued, not left to finish
    # the reference for 4 epochs, run alone
    ref = tmp_path / "ref"
    assert sweep.main(["--out", str(ref), *POINT, "--", *flags]) == 0
    assert resumed == rows(ref / point[0].name)
    assert not (run_dir / "FAILED").exists()


def test_cluster_local_from_the_command_line_gives_the_same_numbers(alone, demo_root, tmp_path):
    out = tmp_path / "cli"
    proc = subprocess.run([sys.executable, "scripts/sweep.py", "--out", str(out), *POINT, "--cluster", "local", "--",
                           "--data_root", str(demo_root), "--epochs", "2", *TINY_FLAGS], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert rows(out / "concat-joint-mmcosineTrue-s10-seed0") == alone


@pytest.mark.parametrize("stop", [signal.SIGUSR1])  # SIGTERM: tests/test_run_safety.py
def test_a_training_process_stopped_by_a_scheduler_signal_resumes_exactly(stop, demo_root, tmp_path):
    """SIGTERM, or SLURM's SIGUSR1 warning, sent to a plain training process: it ends with exit 143 and last.pt
    whole, and --resume finishes with the numbers of an uninterrupted run."""
    run = tmp_path / "run"
    flags = ["--data_root", str(demo_root), *TINY_FLAGS, "--epochs", "4"]
    proc = subprocess.Popen([sys.executable, "main_CD.py", "--train", "--run_dir", str(run), *flags], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and not (run / "last.pt").is_file():
        time.sleep(0.1)
    time.sleep(0.5)  # into the next epoch: the stop drops it and keeps epoch 1's last.pt
    proc.send_signal(stop)
    _, err = proc.communicate(timeout=300)
    if proc.returncode == 0:
        pytest.skip("the run finished before the signal arrived")
    assert proc.returncode == 143 and f"terminated ({stop.name})" in err and f"--resume {run}" in err
    subprocess.run([sys.executable, "main_CD.py", "--resume", str(run), "--no_progress"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    ref = tmp_path / "ref"
    subprocess.run([sys.executable, "main_CD.py", "--train", "--run_dir", str(ref), *flags], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    assert rows(run) == rows(ref)


@pytest.mark.parametrize("argv,message", [
    (["--partition", "gpu"], "--partition is for submitted sweeps"),
    (["--cluster", "local", "--account", "me"], "--account is a SLURM option: use it with --cluster slurm"),
    (["--seeds", " "], "the grid is empty"),
    (["--frobnicate"], "unknown option --frobnicate"),
    (["--jobs", "0"], "argument --jobs: must be 1 or more"),
])
def test_bad_sweep_options_are_one_line_and_start_nothing(argv, message, tmp_path, capsys):
    out = tmp_path / "nothing"
    with pytest.raises(SystemExit) as exit_info:
        sweep.main(["--out", str(out), *argv])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and err.startswith("error: ") and err.count("\n") == 1
    assert not out.exists()


def test_summary_of_a_partial_grid_lists_unfinished_points_and_the_compute_used(tmp_path, capsys):
    import summarize

    def fake(name, epochs_asked, accuracies):
        run = tmp_path / name
        run.mkdir()
        (run / "args.json").write_text(json.dumps({"method": "joint", "fusion_method": "concat", "mmcosine": False,
                                                   "scaling": 10.0, "random_seed": 0, "epochs": epochs_asked}))
        (run / "metrics.jsonl").write_text("".join(
            json.dumps({"epoch": e + 1, "test_acc": a, "test_acc_a": a / 2, "test_acc_v": a / 3,
                        "train_seconds": 1800.0, "test_seconds": 360.0}) + "\n" for e, a in enumerate(accuracies)))
    fake("done", 3, [40, 50, 45])
    fake("running", 5, [30, 35])
    (tmp_path / "queued").mkdir()  # a point whose job has not started: nothing to read yet
    runs = summarize.main([str(tmp_path)])
    out = capsys.readouterr().out
    assert [r["run"] for r in runs] == [str(tmp_path / "done")]
    assert "unfinished points, not in the table (1;" in out and f"- {tmp_path / 'running'}: epoch 2 of 5" in out
    assert "compute used so far: 3.00 device-hours" in out  # 5 epochs x (1800 + 360) s
