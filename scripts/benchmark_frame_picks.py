"""What the reference frame picks of Kinetics-Sounds / AVE / VGGSound cost in the data path: training
items/s of main_KS.py's dataset with --frame_pick segments --frame_augment frame (a random frame inside
each segment, drawn per item: only the picked frames are decoded, but the cache keeps every frame of a
clip; a crop per frame) against --frame_pick even --frame_augment clip (the frames fixed when the clips
are listed; one crop per clip), uncached and from the decode-once cache (the lossy one,
--cache_frame_size 256, as these numbers were first taken), on a generated Kinetics-Sounds tree (10
frames a clip, 480 x 360 jpgs). The two settings' passes alternate and the ratio is the median of the
pairs, so load drifts alike on both.

    python scripts/benchmark_frame_picks.py --clips 48
"""
import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import main_KS  # noqa: E402
from dataset.demo_layouts import write_kinetics_sounds_demo  # noqa: E402
from utils.caching import attach_caches  # noqa: E402

SETTINGS = {"segments + frame (reference)": ["--frame_pick", "segments", "--frame_augment", "frame"],
            "even + clip (earlier)": ["--frame_pick", "even", "--frame_augment", "clip"]}


def train_set(root: Path, flags, cache_dir=None):
    args = main_KS.build_parser().parse_args(["--data_root", str(root), "--image_size", "224", *flags])
    data = main_KS.build_datasets(args, True)
    if cache_dir is not None:
        attach_caches(argparse.Namespace(train=data.train, val=None, test=None), argparse.Namespace(
            cache_dir=str(cache_dir), cache_frame_size=256, num_workers=0), "bench", show_progress=False)
    return data.train


def seconds_per_pass(dataset, epoch: int) -> float:
    start = time.perf_counter()
    for i in range(len(dataset)):
        dataset[(i, epoch * 100003 + i)]
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=48, help="training clips of the generated tree (about)")
    parser.add_argument("--pairs", type=int, default=3, help="alternating passes of each setting")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        root = write_kinetics_sounds_demo(Path(work) / "KS", clips_per_class=max(2, args.clips * 4 // 3 // 6),
                                          frames_per_clip=10, image_size=(360, 480))
        print("| data path (Kinetics-Sounds shapes, training items) | items/s | vs earlier |")
        print("|---|---|---|")
        for cached in (False, True):
            sets = {name: train_set(root, flags, Path(work) / f"cache-{i}" if cached else None)
                    for i, (name, flags) in enumerate(SETTINGS.items())}
            times = {name: [] for name in sets}
            for pair in range(args.pairs + 1):  # the first pair warms up (page cache, allocator)
                for name, dataset in sets.items():
                    elapsed = seconds_per_pass(dataset, pair)
                    if pair:
                        times[name].append(elapsed)
            reference, earlier = SETTINGS
            ratio = statistics.median(e / r for r, e in zip(times[reference], times[earlier]))
            where = "cached (--cache_frame_size 256)" if cached else "uncached"
            for name, dataset in sets.items():
                rate = len(dataset) / statistics.median(times[name])
                shown = f"{ratio:.2f}x" if name == reference else "1.00x"
                print(f"| {name}, {where} | {rate:.1f} | {shown} |")


if __name__ == "__main__":
    main()
