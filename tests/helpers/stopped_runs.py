"""A training run stopped the way a scheduler stops it, inside an epoch, and resumed: for the tests of exact
resume (tests/test_main_cd_end_to_end.py and the methods' tests)."""
import json
import os
import signal

import pytest


def stop_after_first_step(monkeypatch):
    """A scheduler's SIGTERM arriving during the next training step: the run takes it at the step's end."""
    import utils.stop
    real, sent = utils.stop.requested, []

    def requested():
        if not sent:
            sent.append(os.kill(os.getpid(), signal.SIGTERM))
        return real()
    monkeypatch.setattr(utils.stop, "requested", requested)


def rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def straight_and_resumed(main, flags, tmp_path, monkeypatch, straight_flags=()):
    """(rows of 2 epochs straight, rows of 1 epoch + a --resume stopped by SIGTERM after the second epoch's first
    step (exit 143) + a --resume to the end), both from `main` (an entry script's main) with `flags`."""
    main([*flags, "--run_dir", str(tmp_path / "straight"), "--epochs", "2", *straight_flags])
    main([*flags, "--run_dir", str(tmp_path / "stopped"), "--epochs", "1"])
    with monkeypatch.context() as patch:
        stop_after_first_step(patch)
        with pytest.raises(SystemExit) as stopped:
            main(["--resume", str(tmp_path / "stopped"), "--epochs", "2", "--no_progress"])
    assert stopped.value.code == 143
    main(["--resume", str(tmp_path / "stopped"), "--epochs", "2", "--no_progress"])
    return rows(tmp_path / "straight"), rows(tmp_path / "stopped")


def assert_same_numbers(straight: dict, resumed: dict) -> None:
    """Every float of a metrics line but the timings equal (equal NaNs too: two epochs on 18 clips can leave
    BatchNorm's statistics so rough that evaluation logits overflow)."""
    for key, value in straight.items():
        if isinstance(value, float) and not key.endswith("seconds"):
            assert resumed[key] == pytest.approx(value, rel=1e-5, abs=1e-6, nan_ok=True), key
