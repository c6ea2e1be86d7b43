"""Every balancing method's training step against joint training's, side by side in one run, at
CREMA-D's shapes (257x299 spectrograms, one 224x224 frame, 6 classes), on the current device. What is
timed is the method's own train_step (its extra forward / backward passes included); per-epoch work
(PMR's prototype pass, G-Blending's and dynamic MSLR's measurements) is not part of a step. A second
table times the per-epoch work of the newer methods: LFM's hyper-gradient update, the valuation
methods' scoring pass, Re-learning's k-means.

    python scripts/benchmark_methods.py --batch 8 --steps 3      # also run by scripts/benchmark.py
    python scripts/benchmark_methods.py --methods dgl arl         # some methods only
"""
import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import main_CD  # noqa: E402
from dataset.modalities import AUDIO_VISUAL  # noqa: E402
from models import MultiModalClassifier  # noqa: E402
from models.encoders import audio_visual_encoders  # noqa: E402
from utils.engine import to_device  # noqa: E402
from utils.build import fill_model_flags  # noqa: E402
from utils.methods import METHODS, build_method  # noqa: E402
from utils.methods.step import Step  # noqa: E402
from utils.precision import Precision  # noqa: E402


def av_model():
    """The CREMA-D model: the ResNet18 pair, concat fusion."""
    return MultiModalClassifier(6, audio_visual_encoders(SimpleNamespace(bn_init="normal")), "concat")


def unimodal_runs(folder: Path):
    """best.pt of an untrained audio_only and visual_only model, for UMT's and G2D's teachers and UME's members."""
    runs = []
    for modality in ("audio", "visual"):
        model = av_model()
        model.keep_only(modality)
        run = folder / modality
        run.mkdir(parents=True, exist_ok=True)
        torch.save({"model": model.state_dict(), "model_config": {"fusion": "concat", "mmcosine": False, "n_classes": 6,
                    "scaling": 10.0, "modalities": [modality], "dataset_modalities": ["audio", "visual"]}},
                   run / "best.pt")
        runs.append(str(run))
    return runs


def method_args(name: str, runs, batch: int):
    args = main_CD.build_parser().parse_args(["--method", name, "--batch_size", str(batch), "--mslr_audio_scale", "0.5",
                                              "--umt_teachers", *runs, "--ume_runs", *runs, "--g2d_teachers", *runs,
                                              "--opm_warmup", "0"])
    fill_model_flags(args, None, main_CD.SOURCE.model_defaults)
    return args


def stepper(name: str, runs, device, batch: int):
    """A function that runs one training step of the method on a fixed batch of CREMA-D's shapes."""
    torch.manual_seed(0)
    args = method_args(name, runs, batch)
    model = av_model()
    method = build_method(args, AUDIO_VISUAL)
    method.configure_model(model)
    model.to(device).train()
    optimizer = torch.optim.SGD(method.param_groups(model), lr=1e-3, momentum=0.9)
    audio = torch.randn(batch, 1, 257, 299, device=device)
    visual = torch.randn(batch, 3, 1, 224, 224, device=device)
    labels = torch.arange(batch, device=device) % 6
    if name in ("pmr", "bss"):  # their per-epoch pass (prototypes, balance scores), here over this batch
        method.train_set = list(range(batch))
        with torch.no_grad():
            seen = model({"audio": audio, "visual": visual})
        method.forward_batches = lambda dataset, keys: iter([(seen, labels)])
    if name == "lfm":  # its held-out clips for the per-epoch update: this batch's
        method.batch_clips = list(zip(audio.cpu(), visual.cpu(), labels.cpu()))
        method.prepare_batch = lambda batch_: to_device(batch_, AUDIO_VISUAL, device)
    method.start_epoch(2 if name == "amco" else 1, model, optimizer)  # AMCo masks from its second epoch on
    precision = Precision("off", device)
    count = [0]

    def one():
        method.train_step(Step(model, model, optimizer, precision, {"audio": audio, "visual": visual}, labels,
                               1 + (name == "amco"), count[0], 100))
        count[0] += 1
        if device.type == "cuda":
            torch.cuda.synchronize()
    return one


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def method_table(device, batch: int, steps: int, names=None):
    """Markdown rows: method, seconds per step, and its time over joint training's. Each method's steps
    alternate with joint steps and the ratio is the median of the pairs, so load that drifts during the
    run (other work on the machine) affects both sides alike. `names`: these methods only (default all)."""
    with tempfile.TemporaryDirectory() as tmp:
        runs = unimodal_runs(Path(tmp))
        joint = stepper("joint", runs, device, batch)
        joint()  # warm-up
        rows = {}
        for name in names or sorted(METHODS):
            step = stepper(name, runs, device, batch)
            step()  # warm-up
            pairs = [(seconds(step), seconds(joint)) for _ in range(steps)]
            rows[name] = (statistics.median(m for m, _ in pairs), statistics.median(m / j for m, j in pairs))
    lines = [f"| method (batch {batch}) | s / step | step time vs joint |", "|---|---|---|"]
    lines += [f"| {name} | {sec:.2f} | {ratio:.2f}x |" for name, (sec, ratio) in rows.items()]
    return lines


def epoch_work_table(device, batch: int, steps: int):
    """Markdown rows for the per-epoch work of LFM, the valuation methods and Re-learning, each against one
    joint training step on the same batch (median of alternating pairs, as method_table)."""
    from utils.methods.lfm import alpha_gradient
    from utils.methods.relearning import cluster_purity
    with tempfile.TemporaryDirectory() as tmp:
        runs = unimodal_runs(Path(tmp))
        joint = stepper("joint", runs, device, batch)
        joint()
    torch.manual_seed(0)
    model = av_model().to(device)
    audio = torch.randn(batch, 1, 257, 299, device=device)
    visual = torch.randn(batch, 3, 1, 224, 224, device=device)
    labels = torch.arange(batch, device=device) % 6

    def lfm_update():
        model.eval()
        alpha_gradient(model, {"audio": audio[: batch // 2], "visual": visual[: batch // 2]}, labels[: batch // 2],
                       (0.05, 0.95), "authors")

    def scoring_pass():  # the valuation methods' eval pass: one forward, the fused head twice more
        model.eval()
        with torch.no_grad():
            out = model({"audio": audio, "visual": visual})
            model.head({"audio": out.enc["audio"], "visual": torch.zeros_like(out.enc["visual"])})
            model.head({"audio": torch.zeros_like(out.enc["audio"]), "visual": out.enc["visual"]})
    rows = {}
    for name, work in (("lfm: hyper-gradient update (half of 16 held-out clips)", lfm_update),
                       ("sample/modality_level: scoring pass, per batch", scoring_pass)):
        work()
        pairs = [(seconds(work), seconds(joint)) for _ in range(steps)]
        rows[name] = (statistics.median(w for w, _ in pairs), statistics.median(w / j for w, j in pairs))
    features = np.random.default_rng(0).normal(size=(6698, 512)).astype("float32")
    labels_np = np.arange(6698) % 6
    start = time.perf_counter()
    for _ in range(2):  # both modalities; train and held-out sets together are the 6,698 train clips
        cluster_purity(features, labels_np, 6)
    kmeans = time.perf_counter() - start
    joint_seconds = statistics.median(seconds(joint) for _ in range(steps))
    rows["relearning: k-means purity, 6,698 x 512 features, both modalities"] = (kmeans, kmeans / joint_seconds)
    lines = [f"| per-epoch work (batch {batch}) | s | vs one joint step |", "|---|---|---|"]
    lines += [f"| {name} | {sec:.2f} | {ratio:.2f}x |" for name, (sec, ratio) in rows.items()]
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--methods", nargs="+", choices=sorted(METHODS), default=None,
                        help="time these methods only (default: every method)")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print("\n".join(method_table(device, args.batch, args.steps, args.methods)))
    print()
    print("\n".join(epoch_work_table(device, args.batch, args.steps)))


if __name__ == "__main__":
    main()
