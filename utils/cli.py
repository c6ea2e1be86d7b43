"""Command-line glue shared by the main_*.py scripts: parsing (with resume), and turning
bad input into one clear line and a non-zero exit instead of a traceback."""
import json
import sys
from pathlib import Path

from dataset.errors import DataError, first_line_of

from .args import explicit_flags
from .runner import evaluate_checkpoint, train


def parse(parser, argv=None):
    """Parse flags; with --resume RUN_DIR, start from that run's args.json and apply only typed flags."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    if args.resume is None:
        return args
    saved_path = Path(args.resume) / "args.json"
    if not saved_path.is_file() or not (Path(args.resume) / "last.pt").is_file():
        raise DataError(f"--resume {args.resume}: no args.json + last.pt there. Give the run directory of an earlier run")
    typed = explicit_flags(parser, argv)
    for key, value in json.loads(saved_path.read_text()).items():
        if key not in typed and key != "resume":
            setattr(args, key, value)
    args.train = True
    return args


def run_main(parser, source, argv=None):
    """Parse, then train or evaluate. Returns the result dict; exits 2 on bad input, 3 on a diverged run."""
    try:
        args = parse(parser, argv)
        return train(args, source) if args.train else evaluate_checkpoint(args, source)
    except DataError as err:
        print(f"error: {first_line_of(err)}", file=sys.stderr)
        raise SystemExit(2)
    except FloatingPointError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(3)
    except RuntimeError as err:  # a DataError raised inside a DataLoader worker arrives wrapped
        if "DataError" not in str(err):
            raise
        print(f"error: {first_line_of(err)}", file=sys.stderr)
        raise SystemExit(2)
