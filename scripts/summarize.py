"""Result table of finished runs: one row per (method, fusion, MMCosine, scaling), mean +- std
over seeds of the best test accuracy and the audio / visual accuracy at that epoch, or, for
speaker-verification runs (main_Vox.py), of the lowest EER on the first trial list with its
minDCF and the audio / visual EERs at that epoch.

    python scripts/summarize.py runs/sweep [more run dirs or folders of runs] [--csv out.csv] [--plot out.png]

Prints a markdown table per kind of run, writes a CSV with one line per run, and (when MMCosine
runs at several scalings exist) a PNG of the best accuracy (or EER) against scaling per fusion,
with each fusion's baseline as a dashed line.
"""
import argparse
import csv
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple, Tuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


class Kind(NamedTuple):
    """How runs of one kind pick their best epoch and what the table shows."""
    selects: str                          # metrics.jsonl key that picks the best epoch
    higher_is_better: bool
    columns: Tuple[Tuple[str, str], ...]  # (run field, table header); the first is the selecting metric


KINDS = {
    "accuracy": Kind("test_acc", True, (("acc", "best acc (%)"), ("acc_a", "audio acc (%)"), ("acc_v", "visual acc (%)"))),
    "verification": Kind("test_eer", False, (("eer", "best EER (%)"), ("min_dcf", "minDCF"),
                                             ("eer_a", "audio EER (%)"), ("eer_v", "visual EER (%)"))),
}
RUN_COLUMNS = ["run", "kind", "method", "fusion", "mmcosine", "scaling", "seed", "epochs", "best_epoch",
               "acc", "acc_a", "acc_v", "f1", "eer", "min_dcf", "eer_a", "eer_v"]


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
    kind = "verification" if "test_eer" in rows[0] else "accuracy"
    rule = KINDS[kind]
    # The first epoch of the best value, as best.pt keeps.
    best = (max if rule.higher_is_better else min)(rows, key=lambda r: r[rule.selects])
    run = {"run": str(run_dir), "kind": kind, "method": args.get("method", "joint"), "fusion": args["fusion_method"],
           "mmcosine": bool(args["mmcosine"]), "scaling": float(args["scaling"]) if args["mmcosine"] else None,
           "seed": args["random_seed"], "epochs": rows[-1]["epoch"], "best_epoch": best["epoch"]}
    if kind == "accuracy":
        run.update(acc=best["test_acc"], acc_a=best["test_acc_a"], acc_v=best["test_acc_v"], f1=best.get("test_f1"))
    else:
        run.update(eer=best["test_eer"], min_dcf=best["test_min_dcf"], eer_a=best["test_eer_a"],
                   eer_v=best["test_eer_v"])
    return run


def mean_std(values, digits: int = 2):
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def group_key(run):
    return run["method"], run["fusion"], run["mmcosine"], run["scaling"]


def markdown_table(runs, kind: str) -> str:
    columns = KINDS[kind].columns
    groups = defaultdict(list)
    for run in runs:
        groups[group_key(run)].append(run)
    lines = ["| method | fusion | MMCosine | scaling | seeds | " + " | ".join(h for _, h in columns) + " | best epoch |",
             "|---|---|---|---|---|" + "---|" * len(columns) + "---|"]
    for key in sorted(groups, key=lambda k: (k[0], k[1], k[2], k[3] or 0)):
        g = groups[key]
        method, fusion, mmcosine, scaling = key
        values = " | ".join(mean_std([r[field] for r in g], digits=3 if field == "min_dcf" else 2) for field, _ in columns)
        lines.append(f"| {method} | {fusion} | {'yes' if mmcosine else 'no'} | {'' if scaling is None else f'{scaling:g}'} "
                     f"| {','.join(str(r['seed']) for r in g)} | {values} "
                     f"| {mean_std([r['best_epoch'] for r in g], digits=0 if len(g) == 1 else 1)} |")
    return "\n".join(lines)


def plot_scaling(runs, out: Path, kind: str = "accuracy") -> bool:
    """The best value against scaling, one line per (method, fusion); False when there is nothing to plot."""
    field, header = KINDS[kind].columns[0]
    curves, baselines = defaultdict(lambda: defaultdict(list)), defaultdict(list)
    for run in runs:
        if run["mmcosine"]:
            curves[(run["method"], run["fusion"])][run["scaling"]].append(run[field])
        else:
            baselines[(run["method"], run["fusion"])].append(run[field])
    if not any(len(c) > 1 for c in curves.values()):
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    for (method, fusion), by_scale in sorted(curves.items()):
        scales = sorted(by_scale)
        line, = ax.plot(scales, [statistics.mean(by_scale[s]) for s in scales], marker="o", label=f"{fusion} ({method})")
        if (method, fusion) in baselines:
            ax.axhline(statistics.mean(baselines[(method, fusion)]), color=line.get_color(), linestyle="--", alpha=0.6)
    ax.set_xlabel("MMCosine scaling s")
    ax.set_ylabel(f"test {header}")
    ax.set_title(f"{header.split(' (')[0]} vs scaling (dashed: without MMCosine)")
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
    kinds = [k for k in KINDS if any(r["kind"] == k for r in runs)]
    for kind in kinds:
        print(markdown_table([r for r in runs if r["kind"] == kind], kind), end="\n\n")
    print(f"per-run CSV: {csv_path}")
    for kind in kinds:
        plot_path = Path(args.plot or first / "scaling.png")
        if len(kinds) > 1 and kind == "verification":  # both kinds: keep the two plots apart
            plot_path = plot_path.with_name(f"{plot_path.stem}_eer{plot_path.suffix}")
        if plot_scaling([r for r in runs if r["kind"] == kind], plot_path, kind):
            print(f"{KINDS[kind].columns[0][1].split(' (')[0]} vs scaling: {plot_path}")
    return runs


if __name__ == "__main__":
    main()
