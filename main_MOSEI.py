"""Train / evaluate MMCosine and its baselines on CMU-MOSEI sentiment from text, audio and vision feature sequences.

    python main_MOSEI.py --train --data_root /path/to/MOSEI                        # BalanceBenchmark's baseline
    python main_MOSEI.py --train --data_root /path/to/MOSEI --mmcosine True       # its MMCosine (s = 15)
    python main_MOSEI.py --ckpt_path runs/mosei/<run>/best.pt --data_root /path/to/MOSEI

The data are MulT's pickles (dataset/mosei.py): mosei_senti_data_noalign.pkl (the default, BalanceBenchmark's) or,
with --aligned True, mosei_senti_data.pkl. The MMCosine release has no CMU-MOSEI script; the defaults are
BalanceBenchmark's (GeWu-Lab/BalanceBenchmark @4c1482f), which published baseline 78.99 / MMCosine 80.38 accuracy:
binary labels with zero counted positive (--labels binary_bb), one transformer per modality read at its last time step
(models/sequence_encoders.py: width 1024, 4 heads, 2 layers), concat fusion, AdamW lr 1e-3 weight decay 0.01, batch 32,
30 epochs, StepLR(10, 0.1), MMCosine scale 15 (its trainer_config.yaml), best.pt chosen on the valid split and
reported on test. --labels binary_mult gives MulT's binary metric (zero-sentiment samples left out), seven its 7 classes.
"""
import argparse

from dataset.errors import DataError
from dataset.mosei import FEATURE_DIMS, LABEL_MODES, MOSEI_MODALITIES, class_names, load_mosei
from models.sequence_encoders import SequenceTransformerEncoder
from utils.args import add_classification_args, add_shared_args, entry_parser, str2bool
from utils.cli import run_main
from utils.datasets import Datasets, existing_data_root
from utils.flag_types import POSITIVE_INT, Bounded
from utils.runner import DataSource

DROPOUT = Bounded(float, low=0, high=1, high_open=True)


def build_parser() -> argparse.ArgumentParser:
    parser = entry_parser(__doc__)
    g = parser.add_argument_group("CMU-MOSEI data")
    g.add_argument("--data_root", default="data/CMU-MOSEI",
                   help="folder holding MulT's mosei_senti_data_noalign.pkl and / or mosei_senti_data.pkl")
    g.add_argument("--aligned", type=str2bool, default=False, metavar="BOOL",
                   help="read the word-aligned pickle (mosei_senti_data.pkl) instead of the unaligned one "
                        "(mosei_senti_data_noalign.pkl, BalanceBenchmark's)")
    g.add_argument("--labels", choices=list(LABEL_MODES), default="binary_bb",
                   help="binary_bb: sentiment < 0 negative, else positive, zero counted positive (BalanceBenchmark); "
                        "binary_mult: > 0 vs < 0 with zero-sentiment samples left out of every split (MulT's binary "
                        "metric); seven: round(clip(y, -3, 3)) + 3 (MulT's 7-class metric)")
    g.add_argument("--zero_nonfinite", type=str2bool, default=False, metavar="BOOL",
                   help="set NaN / infinite feature values other than audio's -inf (which is always set to 0, as "
                        "MulT) to 0 and say how many, instead of stopping")
    add_classification_args(g)
    m = parser.add_argument_group("sequence encoders (BalanceBenchmark's Transformer_Encoder per modality)")
    m.add_argument("--seq_dim", type=POSITIVE_INT, default=1024, help="width: the 1x1 convolution's output and d_model")
    m.add_argument("--seq_heads", type=POSITIVE_INT, default=4, help="attention heads (must divide --seq_dim)")
    m.add_argument("--seq_layers", type=POSITIVE_INT, default=2, help="transformer encoder layers")
    m.add_argument("--seq_ff", type=POSITIVE_INT, default=2048, help="feed-forward width (PyTorch's default)")
    m.add_argument("--seq_dropout", type=DROPOUT, default=0.1, help="dropout in the layers (PyTorch's default)")
    add_shared_args(parser, "BalanceBenchmark's configs: AdamW, wd 0.01, StepLR(10, 0.1)", epochs=30, batch_size=32,
                    lr_decay_step=10, modalities=MOSEI_MODALITIES)
    # global_config.yaml: AdamW (lr 1e-3 = base_lr, weight_decay 0.01, torch's betas)
    parser.set_defaults(optimizer="adamw", weight_decay=0.01)
    return parser


def build_datasets(args, with_train: bool) -> Datasets:
    root = existing_data_root(args.data_root, "CMU-MOSEI", "mosei")
    if args.cache_dir is not None:
        raise DataError("--cache_dir: the decode-once cache holds audio and frames; CMU-MOSEI's features are read "
                        "into memory from the pickle. Leave the flag out")
    if args.val_split is not None:
        raise DataError("--val_split: CMU-MOSEI has its own validation split (valid), on which best.pt is chosen. "
                        "Leave the flag out")
    splits = ("train", "valid", "test") if with_train else ("test",)
    loaded = load_mosei(root, args.aligned, args.labels, args.zero_nonfinite, splits)
    data = Datasets(classes=class_names(args.labels), test=loaded["test"], notes=loaded["notes"])
    if with_train:
        data.train, data.val = loaded["train"], loaded["valid"]
    return data


def build_encoders(args) -> dict:
    """{modality: BalanceBenchmark's transformer over its features}, in the dataset's order (text, audio, vision)."""
    if args.seq_dim % args.seq_heads:
        raise DataError(f"--seq_dim {args.seq_dim} must divide by --seq_heads {args.seq_heads}")
    return {name: SequenceTransformerEncoder(dim, args.seq_dim, args.seq_heads, args.seq_layers, args.seq_ff,
                                             args.seq_dropout)
            for name, dim in FEATURE_DIMS.items()}


SOURCE = DataSource(name="mosei", script="main_MOSEI.py", build=build_datasets, modalities=MOSEI_MODALITIES,
                    encoders=build_encoders, model_defaults={"fusion_method": "concat", "scaling": 15.0})


def main(argv=None):
    return run_main(build_parser(), SOURCE, argv)


if __name__ == "__main__":
    main()
