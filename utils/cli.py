"""Command-line glue shared by the main_*.py scripts: parsing (with resume), and turning
bad input into one clear line and a non-zero exit instead of a traceback."""
import json
import os
import sys
from pathlib import Path

from dataset.errors import DataError, first_line_of

from . import distributed
from .args import apply_modality_shorthand, check_flags, explicit_flags, restore_settings
from .run_dir import Interrupted
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


def run_main(parser, source, argv=None):
    """Parse, then train or evaluate. Returns the result dict; exits 2 on bad input, 3 on a diverged run."""
    try:
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
        _fail(str(err), 130)
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
