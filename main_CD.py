"""Train / evaluate MMCosine and its baselines on CREMA-D (6 emotions).

    python main_CD.py --train --fusion_method gated --mmcosine True --scaling 10 --data_root /path/to/CREMA-D
    python main_CD.py --ckpt_path runs/cremad/<run>/best.pt --data_root /path/to/CREMA-D
"""
import argparse
from pathlib import Path

from dataset import CremadDataset, DataError, load_splits, resolve_class_list, resolve_frames_dir
from dataset.splits import write_split
from utils.args import add_clip_args, add_shared_args, clip_options
from utils.cli import run_main
from utils.runner import DataSource, Datasets


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = parser.add_argument_group("CREMA-D data")
    g.add_argument("--data_root", default="data/CREMA-D-real",
                   help="folder holding AudioWAV/, the frames folder and the split csv files")
    g.add_argument("--frames_dir", default=None,
                   help="frames folder under the data root (default Image-01-FPS if present, else image)")
    g.add_argument("--train_csv", default=None, help="train split under the data root (default train.csv)")
    g.add_argument("--test_csv", default=None, help="test split under the data root (default test.csv)")
    g.add_argument("--class_csv", default=None,
                   help="class list under the data root (default stat.csv; if absent, the shipped 6 emotions)")
    add_clip_args(g, num_frames=1, audio_seconds=3.0, audio_help="audio length fed to the spectrogram (reference recipe: 3 s -> 257x299)")
    add_shared_args(parser, epochs=100, batch_size=32)
    return parser


def build_datasets(args, with_train: bool) -> Datasets:
    root = Path(args.data_root)
    if not root.is_dir():
        raise DataError(f"data root not found: {root}. Pass --data_root /path/to/CREMA-D "
                        "(or make demo data: python -m dataset.demo --out demo_data/CREMA-D)")
    classes = resolve_class_list(root, args.class_csv)
    frames_dir = resolve_frames_dir(root, args.frames_dir)
    train_list, test_list, generated = load_splits(root, classes, args.train_csv, args.test_csv)
    common = dict(frames_dir=frames_dir, **clip_options(args))
    data = Datasets(classes=classes, test=CremadDataset(root, test_list, train=False, split_name="test", **common))
    if generated:
        data.notes.append(f"no train.csv/test.csv in {root}: using a deterministic stratified 90/10 split "
                          "(copied to the run directory)")
        data.files = {"train.csv": lambda p: write_split(p, train_list, classes),
                      "test.csv": lambda p: write_split(p, test_list, classes)}
    if with_train:
        data.train = CremadDataset(root, train_list, train=True, split_name="train", **common)
    return data.note_skipped()


SOURCE = DataSource(name="cremad", build=build_datasets)


def main(argv=None):
    return run_main(build_parser(), SOURCE, argv)


if __name__ == "__main__":
    main()
