"""Train / evaluate MMCosine and its baselines on CREMA-D (6 emotions).

    python main_CD.py --train --fusion_method gated --mmcosine True --scaling 10 --data_root /path/to/CREMA-D
    python main_CD.py --ckpt_path runs/cremad/<run>/best.pt --data_root /path/to/CREMA-D
"""
import argparse
from pathlib import Path

from dataset import CremadDataset, DataError, load_splits, resolve_class_list, resolve_frames_dir
from utils.args import add_clip_args, add_shared_args, clip_options, entry_parser, str2bool
from utils.cli import run_main
from utils.datasets import Datasets, labelled_clip_datasets
from utils.runner import DataSource


def build_parser() -> argparse.ArgumentParser:
    parser = entry_parser(__doc__)
    g = parser.add_argument_group("CREMA-D data")
    g.add_argument("--data_root", default="data/CREMA-D-real",
                   help="folder holding AudioWAV/, the frames folder and the split csv files")
    g.add_argument("--frames_dir", default=None,
                   help="frames folder under the data root (default Image-01-FPS if present, else image)")
    g.add_argument("--train_csv", default=None,
                   help="train split under the data root (default train.csv there; if absent, the paper's shipped split)")
    g.add_argument("--test_csv", default=None,
                   help="test split under the data root (default test.csv there; if absent, the paper's shipped split)")
    g.add_argument("--generate_split", type=str2bool, default=False, metavar="BOOL",
                   help="ignore split files: make a deterministic stratified 90/10 split of the wav files found")
    g.add_argument("--class_csv", default=None,
                   help="class list under the data root (default stat.csv; if absent, the shipped 6 emotions)")
    add_clip_args(g, num_frames=1, audio_seconds=3.0, audio_help="audio length fed to the spectrogram (reference recipe: 3 s -> 257x299)")
    add_shared_args(parser, "the released main_CD.py", epochs=200, batch_size=32, lr_decay_step=100)
    return parser


def build_datasets(args, with_train: bool) -> Datasets:
    root = Path(args.data_root)
    if not root.is_dir():
        raise DataError(f"data root not found: {root}. Pass --data_root /path/to/CREMA-D "
                        "(or make demo data: python -m dataset.demo --out demo_data/CREMA-D)")
    classes = resolve_class_list(root, args.class_csv)
    frames_dir = resolve_frames_dir(root, args.frames_dir)
    split = load_splits(root, classes, args.train_csv, args.test_csv, args.generate_split)
    options = clip_options(args)

    def make(samples, train, split_name):
        return CremadDataset(root, samples, frames_dir=frames_dir, train=train, split_name=split_name, **options)

    return labelled_clip_datasets(args, classes, split.train, split.test, split.source, make, with_train, root)


SOURCE = DataSource(name="cremad", script="main_CD.py", build=build_datasets)


def main(argv=None):
    return run_main(build_parser(), SOURCE, argv)


if __name__ == "__main__":
    main()
