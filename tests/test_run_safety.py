"""Output paths, run-directory locks, and the messages of a run that stops: each says the truth in
one line and leaves the run directory usable."""
import json
import shutil
import sys

import pytest
import torch

import main_CD
from conftest import ROOT, TINY_FLAGS
from utils import run_dir as run_dir_module


def one_line_exit(argv, capsys, code=2):
    with pytest.raises(SystemExit) as exit_info:
        main_CD.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == code and len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.fixture(scope="module")
def finished(demo_root, tmp_path_factory):
    run = tmp_path_factory.mktemp("finished") / "run"
    main_CD.main(["--train", "--data_root", str(demo_root), "--run_dir", str(run), "--epochs", "1", *TINY_FLAGS])
    return run


def train_argv(demo_root, run, *extra):
    return ["--train", "--data_root", str(demo_root), "--run_dir", str(run), "--epochs", "1", *TINY_FLAGS, *extra]


@pytest.mark.parametrize("flag", ["--run_dir", "--tensorboard_path", "--cache_dir"])
def test_an_unwritable_output_path_stops_before_any_data_is_read(flag, demo_root, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    argv = train_argv(tmp_path / "nowhere", tmp_path / "run", flag, str(blocker / "sub"))  # the data root is missing too
    err = one_line_exit(argv, capsys)
    assert f"{flag} {blocker / 'sub'}" in err and "is a file, not a folder" in err


def test_evaluation_probes_its_output_paths_first(finished, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    err = one_line_exit(["--ckpt_path", str(finished / "best.pt"), "--cache_dir", str(blocker / "cache")], capsys)
    assert f"--cache_dir {blocker / 'cache'}" in err and "is a file, not a folder" in err


def test_train_with_a_checkpoint_file_as_ckpt_path_is_one_line(finished, demo_root, tmp_path, capsys):
    err = one_line_exit(["--train", "--data_root", str(demo_root), "--ckpt_path", str(finished / "best.pt"),
                         *TINY_FLAGS], capsys)
    assert "is a file: with --train it names the run directory" in err


def test_a_folder_with_old_metrics_but_no_checkpoint_is_refused(finished, demo_root, tmp_path, capsys):
    old = tmp_path / "old"
    shutil.copytree(finished, old)
    (old / "last.pt").unlink()
    err = one_line_exit(train_argv(demo_root, old), capsys)
    assert "earlier run's metrics.jsonl but no last.pt" in err
    assert len((old / "metrics.jsonl").read_text().splitlines()) == 1  # nothing appended


def test_two_runs_cannot_write_one_folder(finished, demo_root, tmp_path, capsys):
    busy = tmp_path / "busy"
    shutil.copytree(finished, busy)
    held = run_dir_module.lock(busy)  # another process would hold it the same way
    try:
        err = one_line_exit(["--resume", str(busy), "--epochs", "2"], capsys)
        assert "is in use by another run right now" in err
    finally:
        run_dir_module.os.close(held)
    main_CD.main(["--resume", str(busy), "--epochs", "2", "--no_progress"])  # free again: it continues
    assert len((busy / "metrics.jsonl").read_text().splitlines()) == 2


def test_a_run_diverging_in_its_first_epoch_says_no_checkpoint_exists(demo_root, tmp_path, capsys):
    err = one_line_exit(train_argv(demo_root, tmp_path / "run", "--mmcosine", "True", "--scaling", "1e30"), capsys,
                        code=3)
    assert "non-finite loss" in err and "no checkpoint was written" in err and "last.pt" not in err


def test_a_damaged_checkpoint_never_suggests_weights_only_false(tmp_path, demo_root, capsys):
    torch.save({"model": {}, "model_config": {}, "extra": torch.nn.Linear(2, 2)}, tmp_path / "odd.pt")
    err = one_line_exit(["--ckpt_path", str(tmp_path / "odd.pt"), "--data_root", str(demo_root)], capsys)
    assert "odd.pt" in err and "weights_only" not in err and "damaged, or not a checkpoint" in err


def test_a_checkpoint_with_broken_weights_does_not_evaluate_to_nan(finished, demo_root, tmp_path, capsys):
    state = torch.load(finished / "best.pt", weights_only=True)
    state["model"]["fusion.fc_out.weight"][0, :5] = float("nan")
    torch.save(state, tmp_path / "broken.pt")
    err = one_line_exit(["--ckpt_path", str(tmp_path / "broken.pt"), "--data_root", str(demo_root), *TINY_FLAGS],
                        capsys)
    assert "non-finite numbers" in err and "damaged" in err


def test_resuming_a_finished_run_says_so_and_changes_nothing(finished, capsys):
    before = {p.name: p.read_bytes() for p in finished.iterdir() if p.is_file()}
    main_CD.main(["--resume", str(finished), "--no_progress"])
    out = capsys.readouterr().out
    assert "has already run 1 of --epochs 1: nothing to do, nothing changed (best: test acc " in out
    assert "{" not in out  # no raw dict
    assert {p.name: p.read_bytes() for p in finished.iterdir() if p.is_file()} == before


def test_ctrl_c_says_how_to_resume(demo_root, tmp_path, capsys, monkeypatch):
    import utils.runner
    real = utils.runner.train_one_epoch

    def interrupted_in_epoch_2(*args, **kwargs):
        if args[5] == 2:  # the epoch argument
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(utils.runner, "train_one_epoch", interrupted_in_epoch_2)
    run = tmp_path / "run"
    err = one_line_exit([*train_argv(demo_root, run)[:-len(TINY_FLAGS)], "--epochs", "3", *TINY_FLAGS], capsys, code=130)
    assert f"interrupted in epoch 2; last.pt holds epoch 1: continue with --resume {run}" in err
    monkeypatch.setattr(utils.runner, "train_one_epoch", real)
    main_CD.main(["--resume", str(run), "--no_progress"])
    assert [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]


def test_a_half_written_metrics_line_neither_breaks_resume_nor_summaries(finished, tmp_path, capsys):
    sys.path.insert(0, str(ROOT / "scripts"))
    import summarize
    run = tmp_path / "torn"
    shutil.copytree(finished, run)
    with open(run / "metrics.jsonl", "a") as fh:
        fh.write('{"epoch": 2, "train_loss": 1.2')  # the crash came in the middle of this write
    assert summarize.summarize_run(run)["epochs"] == 1
    capsys.readouterr()
    main_CD.main(["--resume", str(run), "--epochs", "2", "--no_progress"])
    assert "resuming: 1 half-written line(s) of metrics.jsonl removed (last.pt holds epoch 1)" in capsys.readouterr().out
    assert [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2]


def test_sigterm_stops_like_ctrl_c_and_says_how_to_resume(demo_root, tmp_path):
    """What SLURM sends before it kills a job: exit 143, one line naming the epoch last.pt holds, and
    --resume finishes the run."""
    import signal
    import subprocess
    import time
    run = tmp_path / "run"
    argv = [sys.executable, str(ROOT / "main_CD.py"), *train_argv(demo_root, run)[:-len(TINY_FLAGS)], "--epochs", "30",
            *TINY_FLAGS]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (run / "last.pt").is_file():  # epoch 1 kept (its metrics line is written just before)
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read()
        time.sleep(0.1)
    time.sleep(0.5)  # into epoch 2
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=120)[1].strip().splitlines()
    assert proc.returncode == 143 and len(err) == 1, err
    last = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
    held, partial = last["epoch"], last.get("partial")
    if partial is not None:  # inside an epoch's training steps: taken at the next step's end
        assert partial["epoch"] == held + 1 and 1 <= partial["steps"] <= partial["steps_in_epoch"]
        assert err[0] == (f"error: terminated (SIGTERM) in epoch {held + 1} after step {partial['steps']} of "
                          f"{partial['steps_in_epoch']}; last.pt holds the epoch so far: continue with --resume {run}")
    else:  # during an epoch's evaluation (taken once its files are written), or between two epochs
        assert err[0] in (f"error: terminated (SIGTERM) after epoch {held}; last.pt holds it: continue with --resume {run}",
                          f"error: terminated (SIGTERM) in epoch {held + 1}; last.pt holds epoch {held}: "
                          f"continue with --resume {run}")
    assert [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()] == \
        list(range(1, held + 1))
    subprocess.run([sys.executable, str(ROOT / "main_CD.py"), "--resume", str(run), "--epochs", str(held + 2)],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    assert [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()] == \
        list(range(1, held + 3))


def test_the_sigterm_handler_does_not_outlive_the_run(finished, capsys):
    import signal
    before = signal.getsignal(signal.SIGTERM)
    main_CD.main(["--resume", str(finished), "--no_progress"])  # a whole run_main, which nothing stops
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_full_disk_is_one_line_and_leaves_the_last_checkpoint_whole(demo_root, tmp_path, capsys, monkeypatch):
    import utils.checkpoint
    real_save, saves = torch.save, []

    def disk_fills_in_epoch_2(state, path):
        saves.append(path)
        if state["epoch"] == 2:
            with open(path, "wb") as fh:
                fh.write(b"partial")
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")
        real_save(state, path)

    monkeypatch.setattr(utils.checkpoint.torch, "save", disk_fills_in_epoch_2)
    run = tmp_path / "run"
    err = one_line_exit([*train_argv(demo_root, run)[:-len(TINY_FLAGS)], "--epochs", "2", *TINY_FLAGS], capsys)
    assert f"the disk holding {run} is full: last.pt needs about" in err
    assert "are free; the previous last.pt is intact" in err and f"continue with --resume {run}" in err
    monkeypatch.setattr(utils.checkpoint.torch, "save", real_save)
    assert torch.load(run / "last.pt", map_location="cpu", weights_only=True)["epoch"] == 1
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


def test_a_disk_too_small_for_the_checkpoints_is_refused_before_the_run_starts(demo_root, tmp_path, capsys,
                                                                               monkeypatch):
    import collections
    import utils.checkpoint
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(utils.checkpoint.shutil, "disk_usage", lambda path: usage(10 ** 9, 10 ** 9 - 1000, 1000))
    run = tmp_path / "run"
    err = one_line_exit(train_argv(demo_root, run), capsys)
    assert "has 1,000 bytes free, and this run's checkpoints need about" in err and not run.exists()


def test_best_pt_holds_no_optimizer_state(finished):
    last = torch.load(finished / "last.pt", map_location="cpu", weights_only=True)
    best = torch.load(finished / "best.pt", map_location="cpu", weights_only=True)
    assert "optimizer" in last and "optimizer" not in best
    assert best.keys() == last.keys() - {"optimizer"} and best["epoch"] == last["epoch"]
