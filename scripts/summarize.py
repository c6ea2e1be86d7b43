"""Result table of finished runs: one row per (method, fusion, MMCosine, scaling), mean +- std
over seeds of the best test accuracy and the audio / visual accuracy at that epoch.

    python scripts/summarize.py runs/sweep [more run dirs or folders of runs] [--csv out.csv] [--plot out.png]

Prints a markdown table, writes a CSV with one line per run, and (when MMCosine runs at
several scalings exist) a PNG of best accuracy against scaling per fusion, with each fusion's
baseline as a dashed line.
"""
import argparse
import csv
import json
import statistics
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RUN_COLUMNS = ["run", "method", "fusion", "mmcosine", "scaling", "seed", "epochs", "best_epoch",
               "acc", "acc_a", "acc_v", "f1"]


def find_runs(paths):
    """Run directories (args.json + metrics.jsonl) given directly or anywhere below the paths."""
    runs = []
    for path in map(Path, paths):
        candidates = [path] if (path / "args.json").is_file() else sorted(p.parent for p in path.rglob("args.json"))
        runs += [c for c in candidates if (c / "metrics.jsonl").is_file()]
    if not runs:
        raise SystemExit(f"error: no run directories (args.json + metrics.jsonl) under {', '.join(map(str, paths))}")
    return runs


def summarize_run(run_dir: Path) -> dict:
    args = json.loads((run_dir / "args.json").read_text())
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    best = max(rows, key=lambda r: r["test_acc"])  # first epoch of the best accuracy, as best.pt keeps
    return {"run": str(run_dir), "method": args.get("method", "joint"), "fusion": args["fusion_method"],
            "mmcosine": bool(args["mmcosine"]), "scaling": float(args["scaling"]) if args["mmcosine"] else None,
            "seed": args["random_seed"], "epochs": rows[-1]["epoch"], "best_epoch": best["epoch"],
            "acc": best["test_acc"], "acc_a": best["test_acc_a"], "acc_v": best["test_acc_v"],
            "f1": best.get("test_f1")}


def mean_std(values, digits: int = 2):
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def group_key(run):
    return run["method"], run["fusion"], run["mmcosine"], run["scaling"]


def markdown_table(runs) -> str:
    groups = defaultdict(list)
    for run in runs:
        groups[group_key(run)].append(run)
    lines = ["| method | fusion | MMCosine | scaling | seeds | best acc (%) | audio acc (%) | visual acc (%) | best epoch |",
             "|---|---|---|---|---|---|---|---|---|"]
    for key in sorted(groups, key=lambda k: (k[0], k[1], k[2], k[3] or 0)):
        g = groups[key]
        method, fusion, mmcosine, scaling = key
        lines.append(f"| {method} | {fusion} | {'yes' if mmcosine else 'no'} | {'' if scaling is None else f'{scaling:g}'} "
                     f"| {','.join(str(r['seed']) for r in g)} | {mean_std([r['acc'] for r in g])} "
                     f"| {mean_std([r['acc_a'] for r in g])} | {mean_std([r['acc_v'] for r in g])} "
                     f"| {mean_std([r['best_epoch'] for r in g], digits=0 if len(g) == 1 else 1)} |")
    return "\n".join(lines)


def plot_scaling(runs, out: Path) -> bool:
    """Best accuracy against scaling, one line per (method, fusion); False when there is nothing to plot."""
    curves, baselines = defaultdict(lambda: defaultdict(list)), defaultdict(list)
    for run in runs:
        if run["mmcosine"]:
            curves[(run["method"], run["fusion"])][run["scaling"]].append(run["acc"])
        else:
            baselines[(run["method"], run["fusion"])].append(run["acc"])
    if not any(len(c) > 1 for c in curves.values()):
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    for (method, fusion), by_scale in sorted(curves.items()):
        scales = sorted(by_scale)
        line, = ax.plot(scales, [statistics.mean(by_scale[s]) for s in scales], marker="o", label=f"{fusion} ({method})")
        if (method, fusion) in baselines:
            ax.axhline(statistics.mean(baselines[(method, fusion)]), color=line.get_color(), linestyle="--", alpha=0.6)
    ax.set_xlabel("MMCosine scaling s")
    ax.set_ylabel("best test accuracy (%)")
    ax.set_title("accuracy vs scaling (dashed: without MMCosine)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", help="run directories, or folders holding them")
    parser.add_argument("--csv", default=None, help="per-run CSV (default: summary.csv in the first path)")
    parser.add_argument("--plot", default=None, help="accuracy-vs-scaling PNG (default: scaling.png in the first path)")
    args = parser.parse_args(argv)
    runs = [summarize_run(d) for d in find_runs(args.paths)]
    first = Path(args.paths[0]) if Path(args.paths[0]).is_dir() else Path(".")
    csv_path = Path(args.csv or first / "summary.csv")
    with open(csv_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=RUN_COLUMNS)
        writer.writeheader()
        writer.writerows(runs)
    print(markdown_table(runs))
    print(f"\nper-run CSV: {csv_path}")
    plot_path = Path(args.plot or first / "scaling.png")
    if plot_scaling(runs, plot_path):
        print(f"accuracy vs scaling: {plot_path}")
    return runs


if __name__ == "__main__":
    main()
