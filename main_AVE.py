"""Train / evaluate MMCosine and its baselines on AVE (28 audio-visual events; best.pt is chosen on
its own validation list). As PMR, the inputs are each video's labelled event segment (--segment event,
prepared by scripts/prepare_ave.py); --segment whole uses the whole videos.

    python main_AVE.py --train --fusion_method gated --mmcosine True --scaling 10 --data_root /path/to/AVE
    python main_AVE.py --ckpt_path runs/ave/<run>/best.pt --data_root /path/to/AVE
"""
import argparse

from dataset import DataError
from dataset.audio_recipes import Spectrogram
from dataset.ave import LISTS, SEGMENT_FOLDERS, check_prepared, read_ave_lists
from utils.args import add_clip_args, add_shared_args, clip_options, entry_parser
from utils.cli import run_main
from utils.datasets import Datasets, clip_maker, existing_data_root, labelled_clip_datasets
from utils.runner import DataSource


def build_parser() -> argparse.ArgumentParser:
    parser = entry_parser(__doc__)
    g = parser.add_argument_group("AVE data")
    g.add_argument("--data_root", default="data/AVE-real",
                   help=f"folder holding {', '.join(LISTS.values())} and the prepared audio and frames folders")
    g.add_argument("--segment", choices=sorted(SEGMENT_FOLDERS), default="event",
                   help="event: each video's labelled event (StartTime..EndTime of its list row), as PMR trains and "
                        "tests (audio_event/, frames_event/); whole: the whole 10 s video (audio/, frames/). "
                        "scripts/prepare_ave.py --segment writes either")
    g.add_argument("--audio_dir", default=None,
                   help="wav folder under the data root (default audio_event, or audio with --segment whole)")
    g.add_argument("--frames_dir", default=None,
                   help="frames folder under the data root (default frames_event, or frames with --segment whole)")
    add_clip_args(g, num_frames=4, audio_seconds=10.0,
                  audio_help="audio length fed to the spectrogram (PMR: the event tiled to 10 s -> 257 x 1,004)",
                  frame_pick="segments", frame_augment="frame",  # the GeWu-Lab loaders' frames
                  allow_overlap=True)  # AVE's own lists share videos between splits (8 train/test, 10 train/val)
    add_shared_args(parser, "PMR's AVE scripts", epochs=130, batch_size=64, lr_decay_step=70)
    # PMR's authors build AVE's prototypes from the whole validation list (main_Prototype_grad.py:426-427)
    parser.set_defaults(pmr_prototype_set="validation")
    return parser


def build_datasets(args, with_train: bool) -> Datasets:
    root = existing_data_root(args.data_root, "AVE", "ave")
    if args.val_split is not None:
        raise DataError("AVE has its own validation list (valSet.txt), which picks best.pt: drop --val_split")
    classes, splits = read_ave_lists(root)
    default_audio, default_frames = SEGMENT_FOLDERS[args.segment]
    audio_dir, frames_dir = root / (args.audio_dir or default_audio), root / (args.frames_dir or default_frames)
    for folder in (audio_dir, frames_dir):  # data prepared for the other --segment is refused, never read
        check_prepared(folder, args.segment, root)
    make = clip_maker(audio_dir, frames_dir, clip_options(args), Spectrogram(args.audio_seconds))
    return labelled_clip_datasets(args, classes, splits["train"], splits["test"], "AVE's own lists", make,
                                  with_train, root, val=splits["val"])


SOURCE = DataSource(name="ave", script="main_AVE.py", build=build_datasets)


def main(argv=None):
    return run_main(build_parser(), SOURCE, argv)


if __name__ == "__main__":
    main()
