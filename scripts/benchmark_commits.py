"""This checkout's training and evaluation speed against another commit's, side by side in one run: the same
seeded main_CD.py run (demo data in the CREMA-D layout) alternates between a worktree of COMMIT and this checkout,
A B A B, and the ratio of their epoch times is taken pair by pair, so load that drifts affects both alike.

    python scripts/benchmark_commits.py fb16f9b --pairs 5 --epochs 3 -- --fusion_method concat --mmcosine True

Prints, per pair, the train and test seconds of the epochs after the first (the first builds caches and
warms up) and the medians of COMMIT / this checkout (above 1: this checkout is faster)."""
import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN = """
import sys
sys.path.insert(0, sys.argv[1])
import torch
torch.set_num_threads(int(sys.argv[2]))
import main_CD
main_CD.main(sys.argv[3:])
"""


def epoch_seconds(code: Path, data: Path, run_dir: Path, epochs: int, threads: int, flags):
    argv = ["--train", "--data_root", str(data), "--run_dir", str(run_dir), "--epochs", str(epochs),
            "--no_progress", "--use_tensorboard", "False", *flags]
    subprocess.run([sys.executable, "-c", RUN, str(code), str(threads), *argv], check=True, cwd=code,
                   stdout=subprocess.DEVNULL)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()][1:]
    return sum(r["train_seconds"] for r in rows), sum(r["test_seconds"] for r in rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("commit", help="the git commit (or branch) to compare against")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--clips_per_class", type=int, default=12)
    argv = sys.argv[1:] if argv is None else list(argv)
    flags = argv[argv.index("--") + 1:] if "--" in argv else []  # main_CD.py flags, e.g. -- --fusion_method gated
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        other = tmp / "other"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(other), args.commit], cwd=ROOT, check=True)
        try:
            sys.path.insert(0, str(ROOT))
            from dataset.demo import write_demo
            data = write_demo(tmp / "CREMA-D", clips_per_class=args.clips_per_class, seed=0, layout="folder",
                              frames_per_clip=3, image_size=64, test_fraction=0.25)
            flags = ["--image_size", "64", "--audio_seconds", "1.0", "--batch_size", "8", *flags]
            ratios = {"train": [], "test": []}
            for pair in range(args.pairs):
                a = epoch_seconds(other, data, tmp / f"a{pair}", args.epochs, args.threads, flags)
                b = epoch_seconds(ROOT, data, tmp / f"b{pair}", args.epochs, args.threads, flags)
                ratios["train"].append(a[0] / b[0])
                ratios["test"].append(a[1] / b[1])
                print(f"pair {pair + 1}: train {a[0]:.2f} s vs {b[0]:.2f} s, test {a[1]:.2f} s vs {b[1]:.2f} s", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(other)], cwd=ROOT, check=False)
    for part, values in ratios.items():
        print(f"{part}: {args.commit} / this checkout, median {statistics.median(values):.3f} "
              f"(min {min(values):.3f}, max {max(values):.3f}) over {len(values)} pairs")


if __name__ == "__main__":
    main()
