"""Train / evaluate MMCosine and its baselines on Kinetics-Sounds (31 classes; OGM-GE's split lists ship).

    python main_KS.py --train --fusion_method gated --mmcosine True --scaling 10 --data_root /path/to/KineticsSounds
    python main_KS.py --ckpt_path runs/ks/<run>/best.pt --data_root /path/to/KineticsSounds
"""
import argparse

from dataset.audio_recipes import KaldiFbank
from dataset.kinetics_sounds import class_names, load_lists
from utils.args import add_clip_args, add_shared_args, clip_options, entry_parser
from utils.cli import run_main
from utils.datasets import Datasets, clip_maker, existing_data_root, labelled_clip_datasets
from utils.runner import DataSource


def build_parser() -> argparse.ArgumentParser:
    parser = entry_parser(__doc__)
    g = parser.add_argument_group("Kinetics-Sounds data")
    g.add_argument("--data_root", default="data/KineticsSounds-real", help="folder holding audio/ and frames/")
    g.add_argument("--train_list", default=None,
                   help="train list under the data root (default my_train.txt there; if absent, the shipped OGM-GE list)")
    g.add_argument("--test_list", default=None,
                   help="test list under the data root (default my_test.txt there; if absent, the shipped OGM-GE list)")
    g.add_argument("--class_csv", default=None, help="class names, one per row in index order (default: the indices)")
    g.add_argument("--audio_dir", default="audio", help="wav folder under the data root")
    g.add_argument("--frames_dir", default="frames", help="frames folder under the data root")
    add_clip_args(g, num_frames=3, audio_seconds=10.24,
                  audio_help="audio length: the Kaldi fbank is cut or padded to 100 frames a second (OGM-GE: 1,024)",
                  frame_pick="segments", frame_augment="frame")  # the GeWu-Lab loaders' frames
    add_shared_args(parser, "OGM-GE's main.py", epochs=100, batch_size=64, lr_decay_step=70)
    return parser


def build_datasets(args, with_train: bool) -> Datasets:
    root = existing_data_root(args.data_root, "KineticsSounds", "kinetics_sounds")
    train, test, source = load_lists(root, args.train_list, args.test_list)
    classes = class_names(train + test, root / args.class_csv if args.class_csv else None)
    make = clip_maker(root / args.audio_dir, root / args.frames_dir, clip_options(args), KaldiFbank(args.audio_seconds))
    return labelled_clip_datasets(args, classes, train, test, source, make, with_train, root)


SOURCE = DataSource(name="ks", script="main_KS.py", build=build_datasets)


def main(argv=None):
    return run_main(build_parser(), SOURCE, argv)


if __name__ == "__main__":
    main()
