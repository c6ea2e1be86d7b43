"""Grid of runs over fusion x method x MMCosine x scaling x seed, each in its own directory, run one after
another, as a local pool, or as a SLURM job array through submitit. Finished runs are skipped and interrupted
ones resumed, so the same command continues a sweep.

    python scripts/sweep.py [--entry main_CD.py] [--out runs/sweep] [--fusions "concat"] [--methods "joint"]
                            [--mmcosine "True"] [--scalings "1 5 10 15 20 30 50"] [--seeds "0"] [--retry_failed]
                            [--jobs N] [--cpus_per_run N] [--gpus_per_run N]
                            [--cluster slurm|local [--partition P] [--account A] [--qos Q] [--timeout_min M]]
                            [-- FLAGS...]

A point that fails (bad input, a diverging loss, a crash) is recorded in <its dir>/FAILED and the sweep goes on;
a rerun skips recorded failures unless --retry_failed is given. The exit status is 1 when any point of the grid
has failed, 0 otherwise.

--jobs N runs N points at once on this machine, dealt over the visible GPUs (several per GPU when N exceeds
them), each point's output in <out>/logs/. --cluster slurm submits the grid as one job array (one point per job,
--gpus_per_run GPUs each, torchrun inside the job when more than one): on preemption or at the time limit SLURM
signals the job, the run stops with last.pt whole and the job is requeued and resumes. --cluster local runs the
same submitit path as local processes. Examples:

    python scripts/sweep.py --out runs/fusion --fusions "sum concat film gated" --mmcosine "False True" \\
        --seeds "0 1 2" --jobs 4 -- --data_root /data/CREMA-D
    python scripts/sweep.py --out runs/fusion --fusions "sum concat film gated" --mmcosine "False True" \\
        --seeds "0 1 2" --cluster slurm --partition gpu --account myproject --timeout_min 240 -- --data_root ...

Then: python scripts/summarize.py runs/fusion
"""
import argparse
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from utils.sweep_cluster import run_pool, run_serial, submit  # noqa: E402
from utils.sweep_grid import Launch, grid  # noqa: E402

SLURM_ONLY = ("partition", "account", "qos")


class SweepParser(argparse.ArgumentParser):
    def error(self, message):
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = SweepParser(prog="sweep.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                         allow_abbrev=False)
    parser.add_argument("--entry", default="main_CD.py", help="the entry script every point runs")
    parser.add_argument("--out", default="runs/sweep", help="folder of the points' run directories")
    for name, default in (("fusions", "concat"), ("methods", "joint"), ("mmcosine", "True"), ("scalings", "10"),
                          ("seeds", "0")):
        parser.add_argument(f"--{name}", default=default, help=f"space-separated values (default {default!r})")
    parser.add_argument("--retry_failed", action="store_true", help="run the points recorded as failed again")
    parser.add_argument("--jobs", type=positive, default=1, help="points at once on this machine (local pool)")
    parser.add_argument("--cpus_per_run", type=positive, default=None,
                        help="CPU threads per run (default: this machine's cores / --jobs; on SLURM the job's CPUs)")
    parser.add_argument("--gpus_per_run", type=positive, default=1,
                        help="GPUs per point; more than one runs the point with torchrun (VoxCeleb-sized runs)")
    parser.add_argument("--cluster", choices=["slurm", "local"], default=None,
                        help="submit the grid through submitit: slurm (a job array) or local (local processes)")
    parser.add_argument("--partition", default=None, help="SLURM partition (--cluster slurm)")
    parser.add_argument("--account", default=None, help="SLURM account to charge (--cluster slurm)")
    parser.add_argument("--qos", default=None, help="SLURM quality of service (--cluster slurm)")
    parser.add_argument("--timeout_min", type=positive, default=None,
                        help="time limit of each job in minutes (--cluster; default 1440); a run still going is "
                             "stopped before it, requeued and resumed")
    parser.add_argument("--no_wait", action="store_true",
                        help="--cluster slurm: submit and return, without waiting for the jobs")
    parser.add_argument("flags", nargs="*", help="flags for every point, after --")
    return parser


def check(args) -> None:
    """Refusals, each one line and exit 2, before anything is started or submitted."""
    def fail(message):
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)
    if not (ROOT / args.entry).is_file() and not Path(args.entry).is_file():
        fail(f"--entry {args.entry}: no such entry script (main_CD.py, main_UCF.py, ...)")
    for option in (*SLURM_ONLY, "timeout_min", "no_wait"):
        value = getattr(args, option)
        if value not in (None, False) and args.cluster is None:
            fail(f"--{option} is for submitted sweeps: add --cluster slurm (or --cluster local), or leave it out")
    for option in SLURM_ONLY:
        if getattr(args, option) is not None and args.cluster != "slurm":
            fail(f"--{option} is a SLURM option: use it with --cluster slurm")
    if args.cluster is not None and args.jobs > 1:
        fail("--jobs is the local pool; a submitted grid runs each point as its own job: leave --jobs out")
    if args.cluster == "slurm" and shutil.which("sbatch") is None:
        fail("--cluster slurm: sbatch is not on this machine's PATH. Run the sweep from a SLURM login node, or "
             "use --jobs N (this machine) or --cluster local")


def main(argv=None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # flags for the points go after --
        parser.error(f"unknown option {unknown[0]}; the points' own flags go after --")
    check(args)
    points = grid(*(getattr(args, k).split() for k in ("fusions", "methods", "mmcosine", "scalings", "seeds")))
    if not points:
        print("error: the grid is empty: give at least one value to --fusions, --methods, --mmcosine, --scalings "
              "and --seeds", file=sys.stderr)
        raise SystemExit(2)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    threads = args.cpus_per_run or (max(1, (os.cpu_count() or 1) // args.jobs) if args.cluster is None else None)
    launch = Launch(entry=str(ROOT / args.entry if (ROOT / args.entry).is_file() else args.entry),
                    flags=args.flags, gpus_per_run=args.gpus_per_run, threads=threads)
    if args.cluster is None:
        statuses = run_serial(out, points, launch, args.retry_failed) if args.jobs == 1 else \
            run_pool(out, points, launch, args.retry_failed, args.jobs)
    else:
        options = {"timeout_min": args.timeout_min or 1440, "gpus_per_node": args.gpus_per_run,
                   "cpus_per_task": args.cpus_per_run or 8, "slurm_array_parallelism": len(points)}
        options.update({f"slurm_{k}": getattr(args, k) for k in SLURM_ONLY if getattr(args, k) is not None})
        if args.cluster == "local":  # submitit's local executor takes the time limit alone
            options = {"timeout_min": options["timeout_min"]}
        statuses, _ = submit(out, points, launch, args.retry_failed, args.cluster, options, wait=not args.no_wait)
    failed = [name for name, status in statuses.items() if status in ("failed", "skipped")
              and (out / name / "FAILED").is_file()]
    if failed:
        print(f"{len(failed)} point(s) of the grid failed (see FAILED in each): "
              f"{' '.join(str(out / n) for n in failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
