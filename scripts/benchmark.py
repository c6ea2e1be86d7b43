"""Side-by-side speed measurements, all in one run, on generated data of CREMA-D's shapes
(16 kHz wavs of 1-2.5 s, 480x360 jpg frames, 257x299 spectrograms, 224x224 crops):

1. data path, samples/s in one process (= per DataLoader worker), training transforms:
   the original recipe (soundfile + scipy spectrogram + PIL + torchvision transforms,
   normalised on the CPU) vs this project uncached vs this project from the decode-once
   cache (both leave uint8 frames for the device to normalise);
2. training step, samples/s on the current device: fp32 vs the fastest settings
   (bf16 autocast + channels-last, + torch.compile on CUDA);
3. every balancing method's training step against joint training's, and the per-epoch work of LFM,
   the valuation methods and Re-learning against one joint step (scripts/benchmark_methods.py);
4. optionally (--epoch_clips 6698) one CREMA-D-sized epoch through main_CD.py with the fast
   settings and the cache, in seconds.

    python scripts/benchmark.py                     # CPU: a few minutes
    python scripts/benchmark.py --epoch_clips 6698  # on a GPU machine

The table, the machine and the command are written into docs/benchmarks.md (one section per device).
"""
import argparse
import json
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Optional

import numpy as np
import soundfile
import torch
from PIL import Image
from scipy import signal
from torchvision import transforms

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import main_CD  # noqa: E402
from dataset.demo import write_demo  # noqa: E402
from models import MultiModalClassifier  # noqa: E402
from models.encoders import audio_visual_encoders  # noqa: E402
from utils.caching import attach_caches  # noqa: E402
from benchmark_methods import epoch_work_table, method_table  # noqa: E402

FRAME_HW = (360, 480)


def original_recipe_item(wav_path, frame_path, transform):
    """What the original CREMA-D loader does per sample."""
    samples, rate = soundfile.read(str(wav_path))
    samples = np.clip(np.tile(samples, 3)[:48000], -1.0, 1.0)
    _, _, spec = signal.spectrogram(samples, rate, nperseg=512, noverlap=353)
    spec = np.log(spec + 1e-7)
    spec = (spec - spec.mean()) / (spec.std() + 1e-9)
    image = transform(Image.open(frame_path).convert("RGB"))
    return torch.tensor(spec, dtype=torch.float32).unsqueeze(0), image.unsqueeze(1)


def rate(fn, n, repeats=2):
    """Samples/s of fn(i) over i < n: the best of `repeats` timed passes after one warm-up pass."""
    for i in range(n):
        fn(i)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(n):
            fn(i)
        best = min(best, time.perf_counter() - start)
    return n / best


def bench_data(root, cache_dir):
    args = main_CD.build_parser().parse_args(["--data_root", str(root), "--image_size", "224"])
    plain, cached, lossy = (main_CD.build_datasets(args, True).train for _ in range(3))
    for dataset, size in ((cached, None), (lossy, 256)):
        attach_caches(argparse.Namespace(train=dataset, test=None), argparse.Namespace(
            cache_dir=str(cache_dir), cache_frame_size=size, num_workers=0), "bench", show_progress=False)
    transform = transforms.Compose([transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(),
                                    transforms.ToTensor(),
                                    transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    items = plain.items
    n = len(items)
    return {"original recipe": rate(lambda i: original_recipe_item(items[i][2], items[i][3][0], transform), n),
            "ours, uncached": rate(lambda i: plain[(i, i)], n),
            "ours, cached (exact)": rate(lambda i: cached[(i, i)], n),
            "ours, cached (lossy: --cache_frame_size 256)": rate(lambda i: lossy[(i, i)], n)}


@dataclass(frozen=True)
class StepSetting:
    name: str
    amp: bool = False
    channels_last: bool = False
    compile_mode: Optional[str] = None  # None: eager
    tf32: bool = True  # PyTorch's default lets cuDNN run fp32 convolutions in TF32 on Ampere and newer


FP32 = StepSetting("fp32")
FASTEST = {"cpu": StepSetting("bf16 + channels-last", amp=True, channels_last=True),
           "cuda": StepSetting("bf16 + channels-last + torch.compile (reduce-overhead)", amp=True,
                               channels_last=True, compile_mode="reduce-overhead")}
MATRIX = [StepSetting("fp32 with TF32 off", tf32=False), FP32, StepSetting("fp32 + channels-last", channels_last=True),
          StepSetting("bf16", amp=True), StepSetting("bf16 + channels-last", amp=True, channels_last=True),
          StepSetting("bf16 + channels-last + torch.compile", amp=True, channels_last=True, compile_mode="default"),
          FASTEST["cuda"]]


def bench_step(device, batch_size, steps, setting: StepSetting):
    """Training steps/s of the CREMA-D model on inputs already on the device (the model alone)."""
    torch.backends.cudnn.allow_tf32 = setting.tf32
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    encoders = audio_visual_encoders(SimpleNamespace(bn_init="normal"))
    model = MultiModalClassifier(6, encoders, "concat", mmcosine=True).to(device)
    audio = torch.randn(batch_size, 1, 257, 299, device=device)
    visual = torch.randn(batch_size, 3, 1, 224, 224, device=device)
    labels = torch.randint(0, 6, (batch_size,), device=device)
    if setting.channels_last:
        model = model.to(memory_format=torch.channels_last)
        audio = audio.contiguous(memory_format=torch.channels_last)
        visual = visual.contiguous(memory_format=torch.channels_last_3d)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    step_model = torch.compile(model, mode=setting.compile_mode) if setting.compile_mode else model

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=setting.amp):
            out = step_model({"audio": audio, "visual": visual})
        loss = torch.nn.functional.cross_entropy(out.logits.float(), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(5):  # compilation, cuDNN autotuning and CUDA-graph recording happen here
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch_size * steps / (time.perf_counter() - start)


def bench_epoch(work, clips, device, num_workers, batch_size):
    # `clips` training clips after a 90/10 split, like CREMA-D's 6,698 of 7,442.
    root = write_demo(work / "epoch" / "CREMA-D", clips_per_class=-(-clips * 10 // 9) // 6 + 1, frames_per_clip=1,
                      image_size=FRAME_HW, test_fraction=0.1)
    run_dir = work / "epoch" / "run"
    flags = ["--train", "--data_root", str(root), "--run_dir", str(run_dir), "--epochs", "2",
             "--batch_size", str(batch_size), "--num_workers", str(num_workers), "--cache_dir",
             str(work / "epoch" / "cache"), "--mmcosine", "True", "--no_progress", "--device", str(device)]
    if device.type == "cuda":
        # torch.compile's default mode: the one measured end to end so far (see docs/benchmarks.md).
        flags += ["--amp", "bf16", "--channels_last", "True", "--compile", "True"]
    started = time.perf_counter()
    main_CD.main(flags)
    total = time.perf_counter() - started
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {"train clips": rows[-1]["train_count"], "epoch 1 train s": rows[0]["train_seconds"],
            "epoch 2 train s": rows[-1]["train_seconds"], "epoch 2 eval s": rows[-1]["test_seconds"],
            "whole command s (data cache build included)": total}


def device_name(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def write_doc(doc: Path, heading: str, body: str):
    text = doc.read_text() if doc.is_file() else "# Benchmarks\n\nWritten by `scripts/benchmark.py`; one section per device.\n"
    sections = text.split("\n## ")
    kept = [s for s in sections[1:] if not s.startswith(heading + "\n")]
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text("\n## ".join([sections[0].rstrip("\n") + "\n"] + kept + [f"{heading}\n\n{body}"]))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work_dir", default="/tmp/mmcosine-bench", help="generated data and caches go here")
    parser.add_argument("--clips", type=int, default=48, help="clips for the data-path measurement")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=None,
                        help="training-step batches (default 8 on CPU; 64 and 256 on a GPU)")
    parser.add_argument("--steps", type=int, default=None, help="timed training steps (default 4 CPU, 30 GPU)")
    parser.add_argument("--epoch_clips", type=int, default=0, help="also time one epoch of this many training clips")
    parser.add_argument("--matrix", action="store_true",
                        help="time every setting (TF32 off, channels-last, bf16, compile modes), not just fp32 vs fastest")
    parser.add_argument("--num_workers", type=int, default=8, help="DataLoader workers for the epoch")
    parser.add_argument("--doc", default=str(Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    batches = args.batch_sizes or ([64, 256] if device.type == "cuda" else [8])
    steps = args.steps or (30 if device.type == "cuda" else 4)
    work = Path(args.work_dir)
    root = write_demo(work / "data" / "CREMA-D", clips_per_class=max(1, args.clips // 6), frames_per_clip=3,
                      image_size=FRAME_HW, test_fraction=0.2)

    lines = ["| measurement | samples/s | ratio |", "|---|---|---|"]
    data = bench_data(root, work / "cache")
    for name, value in data.items():
        lines.append(f"| data path, {name} (1 process) | {value:.1f} | {value / data['original recipe']:.1f}x |")
    fastest = FASTEST[device.type]
    settings = [s for s in MATRIX if device.type == "cuda" or s.compile_mode is None] if args.matrix else [FP32, fastest]
    for batch in batches:
        fp32 = bench_step(device, batch, steps, FP32)
        for setting in settings:
            value = fp32 if setting == FP32 else bench_step(device, batch, steps, setting)
            lines.append(f"| training step, {setting.name}, batch {batch} | {value:.1f} | {value / fp32:.2f}x |")
    lines += ["", "Each method's training step (fp32, its own train_step) against joint training's:", ""]
    lines += method_table(device, batches[0], steps)
    lines += ["", "Per-epoch work of the methods that have some, against one joint training step:", ""]
    lines += epoch_work_table(device, batches[0], steps)
    if args.epoch_clips:
        batch = batches[0]
        epoch = bench_epoch(work, args.epoch_clips, device, args.num_workers, batch)
        lines += ["", "One CREMA-D-sized epoch through `main_CD.py` (bf16 + channels-last + torch.compile, cache, "
                  f"{args.num_workers} workers, batch {batch}):", "", "| | |", "|---|---|"]
        lines += [f"| {k} | {v:.1f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in epoch.items()]
    command = "python scripts/benchmark.py " + " ".join(sys.argv[1:])
    body = "\n".join([f"Measured {time.strftime('%Y-%m-%d')} on {device_name(device)}, torch {torch.__version__}.",
                      f"Command: `{command.strip()}`", ""] + lines) + "\n"
    print(body)
    write_doc(Path(args.doc), f"{device_name(device)}: {command.strip()}", body)


if __name__ == "__main__":
    main()
