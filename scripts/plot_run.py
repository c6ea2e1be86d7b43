"""Figures of how balanced a run's modalities were, from its metrics.jsonl (runs overlaid):

    python scripts/plot_run.py runs/cremad/<baseline run> runs/cremad/<mmcosine run> [--out plots/]

accuracy.png      test accuracy, fused and per modality, per epoch
eer.png           (verification runs) EER on the first trial list, fused and per modality, per epoch
gt_logits.png     mean ground-truth logit per modality (test)
weight_norms.png  mean classifier weight norm per modality
angles.png        feature-to-class-centre and feature-to-class-weight angles (mean +- std, test)
shapley.png       each modality's Shapley contribution to the test accuracy (subsets of modalities zeroed)
(a figure is left out when no run logged its quantities; the modalities are whichever the runs logged), and,
for each run with saved test features (--save_features True), from features_best.pt:
<run>_angle_hist.png  per-sample angle to the class centre, one histogram per modality
<run>_embedding.png   2-D PCA of each modality's test features, coloured by class
"""
import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from dataset.modalities import label as modality_label  # noqa: E402
from dataset.modalities import logged_tags  # noqa: E402
from utils.logger import read_metrics  # noqa: E402
from utils.metrics import angles_to_class_centres  # noqa: E402  (the angles the logs report)


def run_metrics(run_dir: Path):
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise SystemExit(f"error: {path} not found. Give run directories written by a main_*.py --train run")
    return read_metrics(path)


def per_modality_figure(runs, title, keys, ylabel, out: Path, std_keys=None):
    """One panel per (key, name); None (no file) when no run logged any of the keys."""
    if not any(key in r for _, rows in runs for r in rows for key, _ in keys):
        return None
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.6), squeeze=False)
    for ax, (key, name) in zip(axes[0], keys):
        for label, rows in runs:
            epochs = [r["epoch"] for r in rows if key in r]
            values = [r[key] for r in rows if key in r]
            line, = ax.plot(epochs, values, label=label)
            if std_keys and std_keys.get(key):
                spread = [r[std_keys[key]] for r in rows if key in r]
                ax.fill_between(epochs, [v - s for v, s in zip(values, spread)],
                                [v + s for v, s in zip(values, spread)], color=line.get_color(), alpha=0.15)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def feature_figures(label, saved: dict, out_dir: Path):
    """Angle histogram and PCA embedding from a loaded features file (one with per-sample labels)."""
    labels, classes = saved["labels"], saved["classes"]
    outputs = []
    fig, ax = plt.subplots(figsize=(5, 3.6))
    tags = [key[len("feat_"):] for key in saved if key.startswith("feat_")]
    for tag in tags:
        angles = angles_to_class_centres(saved[f"feat_{tag}"], labels, len(classes))
        ax.hist(angles.numpy(), bins=30, alpha=0.6, label=modality_label(tag))
    ax.set_xlabel("angle to class centre (degrees)")
    ax.set_ylabel("test samples")
    ax.set_title(label)
    ax.legend()
    fig.tight_layout()
    outputs.append(out_dir / f"{label}_angle_hist.png")
    fig.savefig(outputs[-1], dpi=110)
    plt.close(fig)
    fig, axes = plt.subplots(1, len(tags), figsize=(5 * len(tags), 4), squeeze=False)
    axes = axes[0]
    for ax, tag in zip(axes, tags):
        name = modality_label(tag)
        feat = saved[f"feat_{tag}"].double()
        centred = feat - feat.mean(0)
        _, _, v = torch.linalg.svd(centred, full_matrices=False)  # PCA: project on the top-2 directions
        xy = (centred @ v[:2].T).numpy()
        for k, name_k in enumerate(classes):
            mask = (labels == k).numpy()
            ax.scatter(xy[mask, 0], xy[mask, 1], s=8, label=name_k)
        ax.set_title(f"{name} features (PCA)")
    axes[0].legend(fontsize=7, markerscale=2)
    fig.suptitle(label)
    fig.tight_layout()
    outputs.append(out_dir / f"{label}_embedding.png")
    fig.savefig(outputs[-1], dpi=110)
    plt.close(fig)
    return outputs


def plot_runs(run_dirs, out_dir=None):
    run_dirs = [Path(d) for d in run_dirs]
    out_dir = Path(out_dir) if out_dir else run_dirs[0] / "plots"
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = [(d.name, run_metrics(d)) for d in run_dirs]
    # the modalities' tags, as the runs logged them (one weight norm per modality every epoch)
    tags = list(dict.fromkeys(t for _, rows in runs for r in rows[:1] for t in logged_tags(r, "weight_norm_")))
    each = [(t, modality_label(t)) for t in tags]
    angles = [f"test_angle_{kind}_{t}" for kind in ("centre", "weight") for t in tags]
    written = [
        per_modality_figure(runs, "test accuracy (%)", [("test_acc", "fused"), *((f"test_acc_{t}", n) for t, n in each)],
                            "accuracy (%)", out_dir / "accuracy.png"),
        per_modality_figure(runs, "test EER, first trial list (%)",
                            [("test_eer", "fused"), *((f"test_eer_{t}", n) for t, n in each)], "EER (%)",
                            out_dir / "eer.png"),
        per_modality_figure(runs, "mean ground-truth logit (test)", [(f"test_gt_logit_{t}", n) for t, n in each], "logit",
                            out_dir / "gt_logits.png"),
        per_modality_figure(runs, "classifier weight norm", [(f"weight_norm_{t}", n) for t, n in each],
                            "mean row norm", out_dir / "weight_norms.png"),
        per_modality_figure(runs, "angle to class centre / class weight (test, mean +- std)",
                            [(k, f"{modality_label(k.rsplit('_', 1)[1])} to {k.split('_')[2]}") for k in angles],
                            "degrees", out_dir / "angles.png",
                            std_keys={k: k.replace("angle_centre", "angle_centre_std").replace("angle_weight", "angle_weight_std")
                                      for k in angles}),
        per_modality_figure(runs, "Shapley contribution to test accuracy (percentage points)",
                            [(f"test_shapley_{t}", n) for t, n in each], "accuracy points", out_dir / "shapley.png"),
    ]
    written = [path for path in written if path is not None]
    for d in run_dirs:
        if not (d / "features_best.pt").is_file():
            continue
        saved = torch.load(d / "features_best.pt", weights_only=True)  # read once: it can be large
        if "labels" in saved:  # verification runs keep logit vectors without class labels
            written += feature_figures(d.name, saved, out_dir)
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dirs", nargs="+")
    parser.add_argument("--out", default=None, help="folder for the PNGs (default: FIRST_RUN/plots)")
    args = parser.parse_args(argv)
    for path in plot_runs(args.run_dirs, args.out):
        print(path)


if __name__ == "__main__":
    main()
