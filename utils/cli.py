"""Command-line glue shared by the main_*.py scripts: parsing (with resume), and turning
bad input into one clear line and a non-zero exit instead of a traceback."""
import json
import os
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

from dataset.errors import DataError, first_line_of

from . import distributed, stop
from .args import apply_modality_shorthand, check_flags, explicit_flags, restore_settings
from .run_dir import Interrupted, Terminated
from .runner import evaluate_checkpoint, train


def parse(parser, argv=None):
    """Parse flags; with --resume RUN_DIR, start from that run's args.json and apply only typed flags."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    apply_modality_shorthand(args)
    check_flags(args)
    if args.resume is None:
        return args
    saved_path = Path(args.resume) / "args.json"
    if not saved_path.is_file() or not (Path(args.resume) / "last.pt").is_file():
        raise DataError(f"--resume {args.resume}: no args.json + last.pt there. Give the run directory of an earlier run")
    typed = explicit_flags(parser, argv)
    saved = json.loads(saved_path.read_text())
    for line in restore_settings(args, saved, typed, keep={"resume", "train"}):
        if int(os.environ.get("RANK", "0")) == 0:  # before the process group exists: torchrun's rank
            print(line, flush=True)
    args.train = True
    return args


@contextmanager
def sigterm_as_interrupt():
    """While the block runs, SIGTERM (and SIGUSR1 / SIGUSR2, a scheduler's warning) stops the run as Ctrl-C does
    (last.pt intact, the --resume command said): inside a training epoch at the end of the current step, with the
    epoch so far in last.pt (utils/stop.py), elsewhere (or on a second signal) at once, by raising Terminated. The
    previous handler comes back afterwards: the process that imported the code (a notebook, pytest) keeps its own.
    Forked DataLoader workers inherit the handler and ignore the signal (a scheduler signals every process of the
    job): the main process ends them when it has written its checkpoint."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    owner = os.getpid()

    def handler(signum, frame):
        if os.getpid() != owner or stop.defer(signum):
            return
        raise Terminated(signal.Signals(signum).name)

    # SLURM's warning before a preemption or the time limit (sbatch --signal, submitit) stops the run the same way
    stops = [signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2]
    previous = {s: signal.signal(s, handler) for s in stops}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


def run_main(parser, source, argv=None):
    """Parse, then train or evaluate. Returns the result dict; exits 2 on bad input, 3 on a diverged run,
    130 / 143 on Ctrl-C / SIGTERM."""
    try:
        with sigterm_as_interrupt():
            argv = sys.argv[1:] if argv is None else list(argv)
            args = parse(parser, argv)
            dist_device = distributed.init_from_env(args.device)
            if args.train:
                return train(args, source, dist_device)
            return evaluate_checkpoint(args, source, dist_device, explicit_flags(parser, argv))
    except DataError as err:
        _fail(first_line_of(err), 2)
    except FloatingPointError as err:
        _fail(str(err), 3)
    except Interrupted as err:
        _fail(str(err), err.exit_code)
    except Terminated as err:
        _fail(f"terminated ({err.signal_name}) before training started; nothing was written", 143)
    except KeyboardInterrupt:
        _fail("interrupted before training started; nothing was written", 130)
    except RuntimeError as err:  # a DataError raised inside a DataLoader worker arrives wrapped
        if "DataError" not in str(err):
            raise
        _fail(first_line_of(err), 2)
    finally:
        distributed.cleanup()


def _fail(message: str, code: int):
    where = f"[rank {distributed.rank()}] " if distributed.rank() else ""
    print(f"{where}error: {message}", file=sys.stderr)
    raise SystemExit(code)
