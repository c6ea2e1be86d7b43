"""How long the header check of every listed file takes before training (`--check_files`, on by
default), side by side with decoding every clip once (what finding a bad file without it costs:
an epoch's worth of reading). Generated data in the CREMA-D layout: 16 kHz wavs of 1-2.5 s and
3 frames of 480x360 per clip, of which the model reads one.

    python scripts/benchmark_file_check.py               # 6,698 clips, the paper's train split size
    python scripts/benchmark_file_check.py --clips 600   # quicker

Prints a table and writes it into docs/benchmarks.md.
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmark import device_name, write_doc  # noqa: E402

import torch  # noqa: E402

from dataset import CremadDataset  # noqa: E402
from dataset.demo import write_demo  # noqa: E402
from dataset.file_check import check_files  # noqa: E402
from dataset.splits import read_class_list, read_split  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=6698, help="clips in the generated list")
    parser.add_argument("--work_dir", default="/tmp/mmcosine-filecheck")
    parser.add_argument("--doc", default=str(Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    root = Path(args.work_dir) / "CREMA-D"
    if not (root / "train.csv").is_file():
        write_demo(root, clips_per_class=-(-args.clips // 6), frames_per_clip=3, image_size=(360, 480), test_fraction=0.01)
    classes = read_class_list(root / "stat.csv")
    samples = (read_split(root / "train.csv", classes) + read_split(root / "test.csv", classes))[:args.clips]
    dataset = CremadDataset(root, samples, frames_dir=root / "Image-01-FPS", train=False)
    started = time.perf_counter()
    checked = check_files(dataset.readable_files(), "the list")
    check_s = time.perf_counter() - started
    started = time.perf_counter()
    for i in range(len(dataset)):
        dataset.decode(i)
    decode_s = time.perf_counter() - started
    command = "python scripts/benchmark_file_check.py " + " ".join(sys.argv[1:])
    body = "\n".join([
        f"Measured {time.strftime('%Y-%m-%d')} on {device_name(torch.device('cpu'))}, {len(dataset)} clips "
        f"({checked} files). Command: `{command.strip()}`", "",
        "| before training | seconds | ratio |", "|---|---|---|",
        f"| header check of every listed file (`--check_files`, 16 threads) | {check_s:.1f} | 1x |",
        f"| decoding every clip once (one epoch's reading, 1 process) | {decode_s:.1f} | {decode_s / check_s:.0f}x |"])
    print(body)
    write_doc(Path(args.doc), f"File check: {command.strip()}", body + "\n")


if __name__ == "__main__":
    main()
