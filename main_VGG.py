"""Train / evaluate MMCosine and its baselines on VGGSound (309 classes, the official vggsound.csv).

    python main_VGG.py --train --fusion_method gated --mmcosine True --scaling 10 --data_root /path/to/VGGSound \
        --skip_missing True
    python main_VGG.py --ckpt_path runs/vggsound/<run>/best.pt --data_root /path/to/VGGSound --skip_missing True
"""
import argparse

from dataset.audio_recipes import LogStftCrop
from dataset.vggsound import read_vggsound_csv
from utils.args import add_clip_args, add_shared_args, clip_options, entry_parser
from utils.cli import run_main
from utils.datasets import Datasets, clip_maker, existing_data_root, labelled_clip_datasets
from utils.runner import DataSource


def build_parser() -> argparse.ArgumentParser:
    parser = entry_parser(__doc__)
    g = parser.add_argument_group("VGGSound data")
    g.add_argument("--data_root", default="data/VGGSound-real", help="folder holding vggsound.csv, audio/ and frames/")
    g.add_argument("--csv", default="vggsound.csv", help="official list under the data root")
    g.add_argument("--audio_dir", default="audio", help="wav folder under the data root")
    g.add_argument("--frames_dir", default="frames", help="frames folder under the data root")
    add_clip_args(g, num_frames=3, audio_seconds=5.0,
                  audio_help="length of the audio crop (OGM-GE: 5 s of the clip tiled to 10 s -> 129 x 626 log STFT)",
                  frame_pick="segments", frame_augment="frame")  # the GeWu-Lab loaders' frames
    add_shared_args(parser, "OGM-GE's main.py", epochs=100, batch_size=64, lr_decay_step=70)
    return parser


def build_datasets(args, with_train: bool) -> Datasets:
    root = existing_data_root(args.data_root, "VGGSound", "vggsound")
    classes, splits = read_vggsound_csv(root / args.csv)
    make = clip_maker(root / args.audio_dir, root / args.frames_dir, clip_options(args), LogStftCrop(args.audio_seconds))
    return labelled_clip_datasets(args, classes, splits["train"], splits["test"], f"official {args.csv}", make,
                                  with_train, root)


SOURCE = DataSource(name="vggsound", script="main_VGG.py", build=build_datasets)


def main(argv=None):
    return run_main(build_parser(), SOURCE, argv)


if __name__ == "__main__":
    main()
