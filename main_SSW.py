"""Train / evaluate MMCosine and its baselines on SSW60 (60 bird species, audio-visual clips).

    python main_SSW.py --train --fusion_method gated --mmcosine True --scaling 10 --data_root /path/to/SSW60 \\
        --audio_pretrain runs/ssw60/<audio_only run>/best.pt --visual_pretrain runs/ssw60/<visual_only run>/best.pt
    python main_SSW.py --train --method audio_only --data_root /path/to/SSW60     # uni-modal pretraining
    python main_SSW.py --ckpt_path runs/ssw60/<run>/best.pt --data_root /path/to/SSW60
"""
import argparse

from dataset.ssw60 import read_video_list
from utils.args import add_clip_args, add_shared_args, clip_options, entry_parser, str2bool
from utils.cli import run_main
from utils.datasets import Datasets, clip_maker, existing_data_root, labelled_clip_datasets
from utils.runner import DataSource


def build_parser() -> argparse.ArgumentParser:
    parser = entry_parser(__doc__)
    g = parser.add_argument_group("SSW60 data")
    g.add_argument("--data_root", default="data/SSW60-real", help="folder holding video_ml.csv, audio/ and frames/")
    g.add_argument("--csv", default="video_ml.csv", help="official metadata csv under the data root")
    g.add_argument("--audio_dir", default="audio", help="wav folder under the data root")
    g.add_argument("--frames_dir", default="frames", help="frames folder under the data root")
    g.add_argument("--reliable_audio_only", type=str2bool, default=False, metavar="BOOL",
                   help="keep only clips whose reliable_audio column is true")
    add_clip_args(g, num_frames=3, audio_seconds=10.0, audio_help="audio length fed to the spectrogram")
    add_shared_args(parser, "the released main_CD.py, which also ran SSW60", epochs=200, batch_size=32,
                    lr_decay_step=100)
    return parser


def build_datasets(args, with_train: bool) -> Datasets:
    root = existing_data_root(args.data_root, "SSW60", "ssw60")
    classes, splits = read_video_list(root / args.csv, args.reliable_audio_only)
    make = clip_maker(root / args.audio_dir, root / args.frames_dir, clip_options(args))
    return labelled_clip_datasets(args, classes, splits["train"], splits["test"], f"official {args.csv}", make,
                                  with_train, root)


SOURCE = DataSource(name="ssw60", script="main_SSW.py", build=build_datasets)


def main(argv=None):
    return run_main(build_parser(), SOURCE, argv)


if __name__ == "__main__":
    main()
