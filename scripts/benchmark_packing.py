"""Several CREMA-D-shaped runs on one GPU at once: the throughput of 1, 2, 4, 8 concurrent runs started by
`scripts/sweep.py --jobs N` (each a different seed of one point), optionally again under CUDA MPS, and what the
best packing makes of the paper's CREMA-D table (4 fusions x with/without MMCosine x 3 seeds x 200 epochs).

    python scripts/benchmark_packing.py                       # on the GPU machine: 6,698 train clips, 3 epochs
    python scripts/benchmark_packing.py --mps                 # also with the MPS daemon started for the runs
    python scripts/benchmark_packing.py --clips 24 --epochs 2 --runs 1 2 -- --image_size 32 --audio_seconds 0.5

Data: a generated tree of CREMA-D's shapes (16 kHz wavs, 480x360 jpg frames, a 90/10 split), its decode-once
cache built once before any timing, every run reading it. Each run trains with the fast settings on a GPU
(bf16 + channels-last + torch.compile) or fp32 on the CPU, plus any flags after --. Throughput counts
training clips: the pool's (all runs' clips over its wall time, start-up and evaluation included) and the
steady one (each run's clips per second of its epochs after the first, training and evaluation, summed over
runs). The projection divides the table's training clips by the steady throughput and adds each run's start-up.
The table, the machine and the command go into docs/benchmarks.md.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
import torch  # noqa: E402

import main_CD  # noqa: E402
import sweep  # noqa: E402
from benchmark import FRAME_HW, device_name, write_doc  # noqa: E402
from dataset.demo import write_demo  # noqa: E402

TABLE_RUNS, TABLE_EPOCHS, TABLE_CLIPS = 24, 200, 6698  # the paper's CREMA-D table: runs, epochs, train clips


def run_flags(root: Path, cache: Path, batch: int, workers: int, cuda: bool, extra) -> list:
    flags = ["--data_root", str(root), "--cache_dir", str(cache), "--batch_size", str(batch), "--num_workers",
             str(workers)]
    if cuda:
        flags += ["--amp", "bf16", "--channels_last", "True", "--compile", "True"]
    return flags + list(extra)


def pool(work: Path, n: int, epochs: int, flags: list, cpus: int) -> dict:
    """n seeds of one point at once through sweep.py --jobs n; their clips per second."""
    out = work / f"pool-{n}"
    shutil.rmtree(out, ignore_errors=True)
    seeds = " ".join(str(s) for s in range(n))
    started = time.perf_counter()
    code = sweep.main(["--out", str(out), "--fusions", "concat", "--mmcosine", "True", "--seeds", seeds,
                       "--jobs", str(n), "--cpus_per_run", str(max(1, cpus // n)), "--", "--epochs", str(epochs),
                       *flags])
    wall = time.perf_counter() - started
    if code != 0:
        logs = "\n".join(p.read_text()[-1500:] for p in sorted((out / "logs").glob("*.out")))
        raise SystemExit(f"error: the pool of {n} failed (exit {code}); its logs end:\n{logs}")
    runs = [[json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
            for d in sorted(out.iterdir()) if (d / "metrics.jsonl").is_file()]
    clips = sum(r[-1]["train_count"] * len(r) for r in runs)
    steady = sum(r[-1]["train_count"] * (len(r) - 1) / sum(e["train_seconds"] + e["test_seconds"] for e in r[1:])
                 for r in runs) if epochs > 1 else float("nan")
    first = max(r[0]["train_seconds"] + r[0]["test_seconds"] for r in runs)
    return {"runs": n, "wall": wall, "pool": clips / wall, "steady": steady,
            "startup": wall - sum(e["train_seconds"] + e["test_seconds"] for e in runs[0][1:]) if epochs > 1 else wall,
            "first": first}


def projection(row: dict) -> float:
    """GPU-hours of the CREMA-D table at this packing: training clips over the steady throughput, plus start-up
    (process, compilation, first epoch's extra) once per wave of concurrent runs."""
    waves = -(-TABLE_RUNS // row["runs"])
    return (TABLE_RUNS * TABLE_EPOCHS * TABLE_CLIPS / row["steady"] + waves * row["startup"]) / 3600


class Mps:
    """The CUDA MPS control daemon for the runs started inside the block, its pipes and logs under `folder`;
    left running by nothing (quit on the way out)."""

    def __init__(self, folder: Path):
        self.env = {"CUDA_MPS_PIPE_DIRECTORY": str(folder / "pipe"), "CUDA_MPS_LOG_DIRECTORY": str(folder / "log")}
        self.saved = {}

    def __enter__(self):
        for path in self.env.values():
            Path(path).mkdir(parents=True, exist_ok=True)
        self.saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        subprocess.run(["nvidia-cuda-mps-control", "-d"], check=True)
        return self

    def __exit__(self, *exc):
        subprocess.run(["nvidia-cuda-mps-control"], input="quit\n", text=True, check=False)
        for key, value in self.saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def table(rows: list, label: str) -> list:
    one = rows[0]["steady"]
    lines = [f"| {label} runs at once | pool clips/s (wall) | steady clips/s | vs 1 run | first epoch s | "
             "CREMA-D table, device-hours |", "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['runs']} | {row['pool']:.0f} | {row['steady']:.0f} | {row['steady'] / one:.2f}x | "
                     f"{row['first']:.1f} | {projection(row):.2f} |")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work_dir", default="/tmp/mmcosine-packing")
    parser.add_argument("--clips", type=int, default=TABLE_CLIPS, help="training clips of the generated set")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run (the first includes compilation)")
    parser.add_argument("--runs", type=int, nargs="+", default=[1, 2, 4, 8], help="concurrent runs to time")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--cpus", type=int, default=os.cpu_count(), help="CPU cores dealt over the runs' loaders")
    parser.add_argument("--mps", action="store_true", help="time every packing again under CUDA MPS")
    parser.add_argument("--doc", default=str(ROOT / "docs" / "benchmarks.md"))
    argv = sys.argv[1:] if argv is None else list(argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    cuda = torch.cuda.is_available()
    work = Path(args.work_dir)
    root = write_demo(work / "CREMA-D", clips_per_class=-(-args.clips * 10 // 9) // 6 + 1, frames_per_clip=1,
                      image_size=FRAME_HW, test_fraction=0.1)
    cache = work / "cache"
    # the cache is built once, before any timing (a one-epoch run reads every clip through it)
    workers = max(1, args.cpus // max(args.runs))
    main_CD.main(["--train", "--run_dir", str(work / "warm"), "--epochs", "1", "--no_progress",
                  *run_flags(root, cache, args.batch_size, args.cpus, cuda, extra)])
    flags = run_flags(root, cache, args.batch_size, workers, cuda, extra)
    plain = [pool(work, n, args.epochs, flags, args.cpus) for n in args.runs]
    lines = table(plain, "")
    if args.mps:
        if not cuda or shutil.which("nvidia-cuda-mps-control") is None:
            lines += ["", "MPS: not measured (no CUDA device, or no nvidia-cuda-mps-control on this machine)."]
        else:
            try:
                with Mps(work / "mps"):
                    shared = [pool(work, n, args.epochs, flags, args.cpus) for n in args.runs]
                lines += ["", "Under CUDA MPS (the control daemon started for these runs, stopped after):", ""]
                lines += table(shared, "MPS,")
            except subprocess.CalledProcessError as err:
                lines += ["", f"MPS: the daemon did not start ({err}); not measured."]
    best = min(plain, key=projection)
    command = "python scripts/benchmark_packing.py " + " ".join(argv)
    body = "\n".join([
        f"Measured {time.strftime('%Y-%m-%d')} on {device_name(torch.device('cuda' if cuda else 'cpu'))}, torch "
        f"{torch.__version__}; {plain[0]['runs']} to {plain[-1]['runs']} runs of `main_CD.py` at once "
        f"(`sweep.py --jobs N`), {args.epochs} epochs each, batch {args.batch_size}, {workers} loader workers per "
        f"run, {'bf16 + channels-last + torch.compile' if cuda else 'fp32'}, extra flags: {' '.join(extra) or 'none'}.",
        f"Command: `{command.strip()}`", "", *lines, "",
        f"Projection: the paper's CREMA-D table ({TABLE_RUNS} runs x {TABLE_EPOCHS} epochs x {TABLE_CLIPS} clips) "
        f"takes {projection(best):.2f} device-hours with {best['runs']} runs at once."]) + "\n"
    print(body)
    write_doc(Path(args.doc), f"{device_name(torch.device('cuda' if cuda else 'cpu'))}: {command.strip()}", body)
    return best


if __name__ == "__main__":
    main()
