"""Train / evaluate MMCosine and its baselines on UCF-101 (101 actions) from RGB frames and TV-L1 optical flow.

    python scripts/prepare_ucf101.py --video_root /path/to/UCF-101 --out /path/to/UCF101 --workers 16
    python main_UCF.py --train --fusion_method concat --mmcosine True --scaling 10 --data_root /path/to/UCF101 --split 1
    python main_UCF.py --ckpt_path runs/ucf/<run>/best.pt --data_root /path/to/UCF101

The MMCosine release has no UCF-101 script: only its reader (RDDataset / RDDataset_F1) and its flow backbones,
as bytecode. The training defaults here are therefore those of its main_CD.py: batch 32, 200 epochs, SGD
(momentum 0.9) at lr 1e-3, decayed x0.1 every 100 epochs. --recipe picks the frames and the flow encoder
(dataset/ucf101_recipes.py): release = 3 RGB frames + 16 flow pairs into the release's 3-D ResNet18;
release_2d = 1 flow pair into a 2-D ResNet18; balancebenchmark = 3 flow pairs into a 2-D ResNet18.
Every encoder starts from scratch, as in the release, unless --rgb_pretrain / --flow_pretrain name a local
file: torchvision's ImageNet ResNet18 state dict (models/imagenet_init.py: the flow encoder's conv1 from the RGB
filters averaged over colour, TSN's, or left random with --flow_first_layer random as BalanceBenchmark; the 3-D
encoder's filters inflated over time), or a checkpoint of this project's runs. Nothing is downloaded.
"""
import argparse

from dataset.errors import DataError
from dataset.ucf101 import UCF_MODALITIES, UCF101Dataset
from dataset.ucf101_recipes import RECIPES
from dataset.ucf101_splits import SPLITS, load_ucf101_split
from models.encoders import VisualEncoder
from models.flow_encoders import Flow2DEncoder, Flow3DEncoder
from models.imagenet_init import FIRST_LAYERS
from utils.args import add_classification_args, add_list_check_args, add_shared_args, entry_parser, str2bool
from utils.cli import run_main
from utils.datasets import Datasets, existing_data_root, labelled_clip_datasets
from utils.flag_types import IMAGE_SIDE
from utils.runner import DataSource


def build_parser() -> argparse.ArgumentParser:
    parser = entry_parser(__doc__)
    g = parser.add_argument_group("UCF-101 data")
    g.add_argument("--data_root", default="data/UCF101-real",
                   help="folder holding rgb/ and flow/u/, flow/v/ (scripts/prepare_ucf101.py), and optionally "
                        "classInd.txt with the official split lists (there or in ucfTrainTestlist/)")
    g.add_argument("--split", type=int, choices=list(SPLITS), default=1,
                   help="official split: tests on groups g01-g07 (1), g08-g14 (2) or g15-g21 (3); the papers report 1")
    g.add_argument("--recipe", choices=list(RECIPES), default="release",
                   help="frames and flow encoder: release = the MMCosine release's RDDataset (RGB frames 1-6 of the "
                        "1-fps set, 16 flow pairs, 3-D ResNet18); release_2d = its RDDataset_F1 (flow pair 3, 2-D "
                        "ResNet18); balancebenchmark = BalanceBenchmark's (3 flow pairs, one from each third, 2-D "
                        "ResNet18)")
    g.add_argument("--rgb_dir", default="rgb", help="RGB frames folder under the data root")
    g.add_argument("--flow_dir", default="flow", help="flow folder under the data root (holding u/ and v/)")
    g.add_argument("--image_size", type=IMAGE_SIDE, default=224, help="frame side after crop/resize")
    g.add_argument("--skip_missing", type=str2bool, default=False, metavar="BOOL",
                   help="skip listed videos without RGB frames or flow (or with unequal u and v counts), and say how "
                        "many, instead of stopping")
    g.add_argument("--flow_first_layer", choices=list(FIRST_LAYERS), default="average",
                   help="with --flow_pretrain IMAGENET_RESNET18.pth: conv1 from the RGB filters averaged over colour and "
                        "repeated on u and v (average, TSN's) or left random (random, BalanceBenchmark's)")
    add_list_check_args(g)
    add_classification_args(g)
    add_shared_args(parser, "the released main_CD.py (no UCF-101 script was released)", epochs=200, batch_size=32,
                    lr_decay_step=100, modalities=UCF_MODALITIES)
    return parser


def build_datasets(args, with_train: bool) -> Datasets:
    root = existing_data_root(args.data_root, "UCF101", "ucf101")
    if args.cache_dir is not None:
        raise DataError("--cache_dir: the decode-once cache holds audio and frames, not UCF-101's RGB + flow. "
                        "Leave the flag out")
    split = load_ucf101_split(root, args.split, args.rgb_dir, args.flow_dir)

    def make(samples, train, split_name):
        return UCF101Dataset(root, samples, train, recipe=args.recipe, image_size=args.image_size,
                             rgb_dir=args.rgb_dir, flow_dir=args.flow_dir, skip_missing=args.skip_missing,
                             split_name=split_name)

    return labelled_clip_datasets(args, split.classes, split.train, split.test, split.source, make, with_train, root)


def build_encoders(args) -> dict:
    """{"rgb": 2-D ResNet18, "flow": the recipe's flow ResNet18 (3-D for the release's recipe)}."""
    three_d = RECIPES[args.recipe].flow_encoder == "3d"
    return {"rgb": VisualEncoder(bn_init=args.bn_init),
            "flow": Flow3DEncoder() if three_d else Flow2DEncoder(bn_init=args.bn_init)}


SOURCE = DataSource(name="ucf", script="main_UCF.py", build=build_datasets, modalities=UCF_MODALITIES,
                    encoders=build_encoders)


def main(argv=None):
    return run_main(build_parser(), SOURCE, argv)


if __name__ == "__main__":
    main()
