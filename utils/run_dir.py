"""The run directory: its name, the checks made before anything is written to it (writable paths,
an earlier run's files), the lock that keeps two runs out of one folder, and its first files."""
import fcntl
import json
import os
import time
from pathlib import Path
from typing import Optional

import torch

from dataset.errors import DataError

from . import distributed


class Interrupted(Exception):
    """Ctrl-C or SIGTERM during a run: the message says how to continue it; exit_code is the shell's for the
    signal (130 = 128 + SIGINT, 143 = 128 + SIGTERM)."""

    def __init__(self, message: str, exit_code: int = 130):
        super().__init__(message)
        self.exit_code = exit_code


class Terminated(KeyboardInterrupt):
    """SIGTERM, what SLURM and most schedulers send to stop a job (or SLURM's SIGUSR1/SIGUSR2 warning), raised where
    Ctrl-C's KeyboardInterrupt would be, so a run stops the same way (see utils/cli.py)."""

    def __init__(self, signal_name: str = "SIGTERM"):
        super().__init__(signal_name)
        self.signal_name = signal_name


def default_run_dir(args, dataset_name: str) -> Path:
    head = "mmcosine-s{:g}".format(args.scaling) if args.mmcosine else "baseline"
    method = "" if args.method == "joint" else f"{args.method}-"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / dataset_name / f"{method}{args.fusion_method}-{head}-seed{args.random_seed}-{stamp}"


def check_writable(path, flag: str) -> None:
    """`path` (a folder, made later if absent) can be written: its nearest existing ancestor is a
    writable folder. Checked before any data is read, so a bad path fails at once."""
    path = Path(path).absolute()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise DataError(f"{flag} {path}: {existing} is a file, not a folder. Choose another {flag}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise DataError(f"{flag} {path}: {existing} is not writable. Choose another {flag}")


def resolve_run_dir(args, dataset_name: str) -> Path:
    """The run directory, checked but not made: a new run never reuses a folder that holds a run."""
    if args.resume is not None:
        run_dir = Path(args.resume)
    else:
        if args.run_dir is None and args.ckpt_path is not None and Path(args.ckpt_path).is_file():
            raise DataError(f"--ckpt_path {args.ckpt_path} is a file: with --train it names the run directory "
                            "(as in the original code). Give a folder, or --run_dir")
        run_dir = Path(args.run_dir or args.ckpt_path or default_run_dir(args, dataset_name))
        if distributed.is_distributed():  # every process must agree on the (time-stamped) name
            shared = [str(run_dir)]
            torch.distributed.broadcast_object_list(shared, src=0)
            run_dir = Path(shared[0])
        if (run_dir / "last.pt").exists():
            raise DataError(f"{run_dir} already holds a run (last.pt). Continue it with --resume {run_dir}, "
                            "or choose another --run_dir")
        if (run_dir / "metrics.jsonl").exists():
            raise DataError(f"{run_dir} holds an earlier run's metrics.jsonl but no last.pt to continue from. "
                            "Choose another --run_dir, or delete that folder to start it afresh")
    check_writable(run_dir, "--run_dir")
    for path, flag in ((args.tensorboard_path, "--tensorboard_path"), (args.cache_dir, "--cache_dir")):
        if path is not None:
            check_writable(path, flag)
    return run_dir


def lock(run_dir: Path) -> Optional[int]:
    """An exclusive lock on run_dir/.lock for the life of this process (the kernel drops it when the
    process ends, even on kill -9). A second run into the same folder stops with one line."""
    fd = os.open(run_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise DataError(f"{run_dir} is in use by another run right now. Wait for it to end, or choose another "
                        "--run_dir") from None
    return fd


def write_run_start(run_dir: Path, args, files: dict) -> Optional[int]:
    """Make the run directory, lock it, and write the split files and args.json; called once every
    check has passed. Returns the lock (held until the process ends)."""
    distributed.barrier()  # every process has checked the directory before the main one writes to it
    if not distributed.is_main_process():
        return None
    run_dir.mkdir(parents=True, exist_ok=True)
    held = lock(run_dir)
    for name, write in files.items():
        write(run_dir / name)
    (run_dir / "args.json").write_text(json.dumps(vars(args), indent=2, sort_keys=True) + "\n")
    return held
