"""Train / evaluate MMCosine and its baselines on AVE (28 audio-visual events; best.pt is chosen on
its own validation list).

    python main_AVE.py --train --fusion_method gated --mmcosine True --scaling 10 --data_root /path/to/AVE
    python main_AVE.py --ckpt_path runs/ave/<run>/best.pt --data_root /path/to/AVE
"""
import argparse

from dataset import DataError
from dataset.audio_recipes import Spectrogram
from dataset.ave import LISTS, read_ave_lists
from utils.args import add_clip_args, add_shared_args, clip_options, entry_parser
from utils.cli import run_main
from utils.datasets import Datasets, clip_maker, existing_data_root, labelled_clip_datasets
from utils.runner import DataSource


def build_parser() -> argparse.ArgumentParser:
    parser = entry_parser(__doc__)
    g = parser.add_argument_group("AVE data")
    g.add_argument("--data_root", default="data/AVE-real",
                   help=f"folder holding {', '.join(LISTS.values())}, audio/ and frames/")
    g.add_argument("--audio_dir", default="audio", help="wav folder under the data root")
    g.add_argument("--frames_dir", default="frames", help="frames folder under the data root")
    add_clip_args(g, num_frames=4, audio_seconds=10.0,
                  audio_help="audio length fed to the spectrogram (PMR: the whole 10 s -> 257 x 1,004)")
    add_shared_args(parser, "PMR's AVE scripts", epochs=130, batch_size=64, lr_decay_step=70)
    return parser


def build_datasets(args, with_train: bool) -> Datasets:
    root = existing_data_root(args.data_root, "AVE", "ave")
    if args.val_split is not None:
        raise DataError("AVE has its own validation list (valSet.txt), which picks best.pt: drop --val_split")
    classes, splits = read_ave_lists(root)
    make = clip_maker(root / args.audio_dir, root / args.frames_dir, clip_options(args), Spectrogram(args.audio_seconds))
    return labelled_clip_datasets(args, classes, splits["train"], splits["test"], "AVE's own lists", make,
                                  with_train, root, val=splits["val"])


SOURCE = DataSource(name="ave", build=build_datasets)


def main(argv=None):
    return run_main(build_parser(), SOURCE, argv)


if __name__ == "__main__":
    main()
