"""Result table of finished runs: one row per (method, fusion, MMCosine, scaling), mean +- std
over seeds. Classification runs show the fused test accuracy under three model-selection
protocols side by side: at the best validation epoch (runs with --val_split; best.pt's epoch),
at the best test epoch (the papers' protocol) and at the last epoch, with each modality's
accuracy at best.pt's epoch. --metric acc_linear tables the release's fused accuracy instead (the
fusion layer's plain linear output, which the released main_CD.py scored under MMCosine).
Speaker-verification runs (main_Vox.py) show the lowest EER on the first trial list with its
minDCF and each modality's EER, and the last epoch's EER.

    python scripts/summarize.py runs/sweep [more run dirs or folders of runs] [--metric acc|acc_linear]
                                [--csv out.csv] [--plot out.png]

Prints a markdown table per kind of run, writes a CSV with one line per run, and (when MMCosine
runs at several scalings exist) a PNG of the test accuracy at best.pt's epoch (or the best EER)
against scaling per fusion, with each fusion's baseline as a dashed line.
"""
import argparse
import csv
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Dict, NamedTuple, Tuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from dataset.modalities import label, logged_tags  # noqa: E402
from utils.logger import read_metrics  # noqa: E402


class Kind(NamedTuple):
    """How runs of one kind pick their best epoch and what the table shows."""
    higher_is_better: bool
    at_best: Dict[str, str]               # run field -> metrics.jsonl key, read at best.pt's epoch
    columns: Tuple[Tuple[str, str], ...]  # (run field, table header)


def accuracy_kind(metric: str, tags=()) -> Kind:
    """`tags`: the modalities' tags of the runs (each modality's accuracy is a column)."""
    name = "acc" if metric == "acc" else metric
    return Kind(True, {**{f"acc_{t}": f"test_acc_{t}" for t in tags}, "f1": "test_f1",
                       **{f"shapley_{t}": f"test_shapley_{t}" for t in tags}},
                (("at_best_val", f"test {name} at best val (%)"), ("best_test", f"best test {name} (%)"),
                 ("last", f"last-epoch {name} (%)"), *((f"acc_{t}", f"{label(t)} acc (%)") for t in tags)))


def verification_kind(tags=()) -> Kind:
    return Kind(False, {"min_dcf": "test_min_dcf", **{f"eer_{t}": f"test_eer_{t}" for t in tags}},
                (("best_test", "best EER (%)"), ("min_dcf", "minDCF"), *((f"eer_{t}", f"{label(t)} EER (%)") for t in tags),
                 ("last", "last-epoch EER (%)")))


RUN_COLUMNS = ["run", "kind", "metric", "method", "fusion", "mmcosine", "scaling", "seed", "epochs", "best_epoch",
               "selected_on", "value", "at_best_val", "best_test", "last"]


def run_columns(tags) -> list:
    """The per-run CSV's columns for runs whose modalities have `tags` (in order)."""
    return [*RUN_COLUMNS, *(f"acc_{t}" for t in tags), "f1", "min_dcf", *(f"eer_{t}" for t in tags),
            *(f"shapley_{t}" for t in tags)]


def union(lists) -> list:
    return list(dict.fromkeys(x for items in lists for x in items))


def fail(message: str):
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def find_failed(paths):
    """Sweep points that failed (scripts/sweep.sh leaves a FAILED file): {run dir: what it said}."""
    found = {}
    for path in map(Path, paths):
        for marker in ([path / "FAILED"] if (path / "FAILED").is_file() else sorted(path.rglob("FAILED"))):
            found[marker.parent] = (marker.read_text().splitlines() or ["failed"])[0]
    return found


def find_runs(paths, failed=()):
    """Run directories (args.json + metrics.jsonl) given directly or anywhere below the paths, but
    not the failed ones (their partial numbers would read as results)."""
    runs = []
    for path in map(Path, paths):
        candidates = [path] if (path / "args.json").is_file() else sorted(p.parent for p in path.rglob("args.json"))
        runs += [c for c in candidates if (c / "metrics.jsonl").is_file() and c not in failed]
    if not runs and not failed:
        fail(f"no run directories (args.json + metrics.jsonl) under {', '.join(map(str, paths))}")
    return runs


def unfinished(run_dir: Path):
    """(epochs logged, epochs asked) of a run that has not run all its epochs (still running, or stopped and
    waiting to be resumed), else None. Runs whose args do not say how many epochs count as finished."""
    args = json.loads((run_dir / "args.json").read_text())
    rows = read_metrics(run_dir / "metrics.jsonl")
    done = rows[-1]["epoch"] if rows else 0
    return (done, args["epochs"]) if args.get("epochs") and done < args["epochs"] else None


def device_hours(run_dirs) -> float:
    """Hours the runs have trained and evaluated, from their own per-epoch times (train, validation and test
    seconds of every logged epoch), one device per run."""
    seconds = 0.0
    for run_dir in run_dirs:
        for row in read_metrics(run_dir / "metrics.jsonl"):
            seconds += sum(v for k, v in row.items() if k.endswith("_seconds") and isinstance(v, (int, float)))
    return seconds / 3600


def summarize_run(run_dir: Path, metric: str = "acc") -> dict:
    """One run's numbers. `value` is the test number at best.pt's epoch: the best validation epoch
    when the run has a validation set, else the best test epoch."""
    args = json.loads((run_dir / "args.json").read_text())
    rows = read_metrics(run_dir / "metrics.jsonl")
    if not rows:
        fail(f"{run_dir}/metrics.jsonl holds no finished epoch. Let the run finish one, or leave it out")
    kind, stat = ("verification", "eer") if "test_eer" in rows[0] else ("accuracy", metric)
    tags = logged_tags(rows[0], "test_eer_" if kind == "verification" else "test_acc_")
    rule = verification_kind(tags) if kind == "verification" else accuracy_kind(metric, tags)
    if f"test_{stat}" not in rows[0]:
        fail(f"{run_dir} logged no test_{stat} (a run made before it was logged). Summarize it with --metric acc")
    better = max if rule.higher_is_better else min
    # The first epoch of the best value, as best.pt keeps.
    best_test = better(rows, key=lambda r: r[f"test_{stat}"])
    best_val = better(rows, key=lambda r: r[f"val_{stat}"]) if f"val_{stat}" in rows[0] else None
    held = best_val or best_test
    run = {"run": str(run_dir), "kind": kind, "metric": stat, "method": args.get("method", "joint"),
           "fusion": args["fusion_method"], "mmcosine": bool(args["mmcosine"]),
           "scaling": float(args["scaling"]) if args["mmcosine"] else None, "seed": args["random_seed"],
           "epochs": rows[-1]["epoch"], "best_epoch": held["epoch"], "selected_on": "val" if best_val else "test",
           "value": held[f"test_{stat}"], "at_best_val": best_val[f"test_{stat}"] if best_val else None,
           "best_test": best_test[f"test_{stat}"], "last": rows[-1][f"test_{stat}"], "tags": tags}
    run.update({field: held.get(key) for field, key in rule.at_best.items()})
    return run


def mean_std(values, digits: int = 2):
    if any(v is None for v in values):
        return "–"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def group_key(run):
    return run["method"], run["fusion"], run["mmcosine"], run["scaling"]


def markdown_table(runs, rule: Kind) -> str:
    columns = rule.columns
    groups = defaultdict(list)
    for run in runs:
        groups[group_key(run)].append(run)
    lines = ["| method | fusion | MMCosine | scaling | seeds | " + " | ".join(h for _, h in columns) + " | best epoch |",
             "|---|---|---|---|---|" + "---|" * len(columns) + "---|"]
    for key in sorted(groups, key=lambda k: (k[0], k[1], k[2], k[3] or 0)):
        g = groups[key]
        method, fusion, mmcosine, scaling = key
        values = " | ".join(mean_std([r.get(field) for r in g], digits=3 if field == "min_dcf" else 2)
                            for field, _ in columns)
        lines.append(f"| {method} | {fusion} | {'yes' if mmcosine else 'no'} | {'' if scaling is None else f'{scaling:g}'} "
                     f"| {','.join(str(r['seed']) for r in g)} | {values} "
                     f"| {mean_std([r['best_epoch'] for r in g], digits=0 if len(g) == 1 else 1)} |")
    return "\n".join(lines)


def plot_scaling(runs, out: Path, header: str) -> bool:
    """The test value at best.pt's epoch against scaling, one line per (method, fusion); False when
    there is nothing to plot."""
    field = "value"
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
    ax.set_ylabel(header)
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
    parser.add_argument("--metric", choices=["acc", "acc_linear"], default="acc",
                        help="fused accuracy of classification runs: acc (the trained fused logits: the cosine sum "
                             "under MMCosine) or acc_linear (the fusion layer's plain output, as the released main_CD.py)")
    parser.add_argument("--csv", default=None, help="per-run CSV (default: summary.csv in the first path)")
    parser.add_argument("--plot", default=None, help="accuracy-vs-scaling PNG (default: scaling.png in the first path)")
    args = parser.parse_args(argv)
    failed = find_failed(args.paths)
    found = find_runs(args.paths, failed)
    partial = {d: unfinished(d) for d in found}
    partial = {d: p for d, p in partial.items() if p is not None}
    runs = [summarize_run(d, args.metric) for d in found if d not in partial]
    if not runs and not failed and partial:
        print("no point of the grid has finished yet")
    first = Path(args.paths[0]) if Path(args.paths[0]).is_dir() else Path(".")
    csv_path = Path(args.csv or first / "summary.csv")
    tags = union(r["tags"] for r in runs)
    with open(csv_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=run_columns(tags), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(runs)
    tags_of = {kind: union(r["tags"] for r in runs if r["kind"] == kind) for kind in ("accuracy", "verification")}
    rules = {"accuracy": accuracy_kind(args.metric, tags_of["accuracy"]),
             "verification": verification_kind(tags_of["verification"])}
    kinds = [k for k in rules if any(r["kind"] == k for r in runs)]
    for kind in kinds:
        print(markdown_table([r for r in runs if r["kind"] == kind], rules[kind]), end="\n\n")
    if "accuracy" in kinds:
        print(f"{' / '.join(label(t) for t in tags_of['accuracy'])} accuracy and best epoch: at best.pt's epoch (the "
              "best validation epoch when the run has a --val_split validation set, else the best test epoch)")
    if partial:
        print(f"unfinished points, not in the table ({len(partial)}; running, or stopped: the same sweep command "
              "resumes them):")
        print("\n".join(f"- {run}: epoch {done} of {total}" for run, (done, total) in partial.items()))
    hours = device_hours(list(found) + [d for d in failed if (d / "metrics.jsonl").is_file()])
    print(f"compute used so far: {hours:.2f} device-hours (the runs' own epoch times; one device per run)")
    if failed:
        print(f"failed points, not in the table ({len(failed)}; rerun the sweep with --retry_failed to try again):")
        print("\n".join(f"- {run}: {reason}" for run, reason in failed.items()))
    print(f"per-run CSV: {csv_path}")
    for kind in kinds:
        plot_path = Path(args.plot or first / "scaling.png")
        if len(kinds) > 1 and kind == "verification":  # both kinds: keep the two plots apart
            plot_path = plot_path.with_name(f"{plot_path.stem}_eer{plot_path.suffix}")
        header = "best EER (%)" if kind == "verification" else f"test {args.metric} at best.pt's epoch (%)"
        if plot_scaling([r for r in runs if r["kind"] == kind], plot_path, header):
            print(f"{header.split(' (')[0]} vs scaling: {plot_path}")
    return runs


if __name__ == "__main__":
    main()
