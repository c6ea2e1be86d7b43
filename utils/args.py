"""Argparse pieces every entry script shares. Dataset-specific flags live in the main_*.py files."""
import argparse
import sys
from typing import Sequence, Set

import torch

from dataset.errors import DataError
from dataset.frame_picks import FRAME_PICKS
from dataset.modalities import AUDIO_VISUAL
from dataset.visual import FRAME_AUGMENTS
from models import FUSIONS
from models.encoders import BN_INITS

from .flag_types import (BATCH, DECAY, FRACTION, IMAGE_SIDE, MOMENTUM, NONNEGATIVE, NONNEGATIVE_INT, POSITIVE,
                         POSITIVE_INT, SECONDS, Bounded)
from .methods import METHODS


TRUE_WORDS = {"true", "t", "1", "yes", "y", "on"}
FALSE_WORDS = {"false", "f", "0", "no", "n", "off"}


def str2bool(text) -> bool:
    """`--mmcosine False` must mean False (argparse's type=bool makes it True)."""
    if isinstance(text, bool):
        return text
    word = str(text).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise argparse.ArgumentTypeError(f"expected True/False/1/0/yes/no, got {text!r}")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the scripts' docstrings as written and shows every flag's default (but None / off)."""

    def _get_help_string(self, action):
        text = action.help or ""
        hidden = action.default is None or action.default is False or action.default is argparse.SUPPRESS
        if "%(default)" in text or hidden or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)" if text else "(default: %(default)s)"


class EntryParser(argparse.ArgumentParser):
    """Bad flags are one `error:` line (flag, value, expected range) and exit status 2, without the usage dump."""

    def error(self, message):
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def entry_parser(doc: str) -> argparse.ArgumentParser:
    """The parser every main_*.py starts from: its docstring as the description, defaults shown."""
    return EntryParser(description=doc, formatter_class=HelpFormatter)


def check_flags(args) -> None:
    """Checks that involve more than one flag, or the machine, made right after parsing."""
    if args.modulation_ends is not None and args.modulation_ends < args.modulation_starts:
        raise DataError(f"--modulation_ends {args.modulation_ends} is before --modulation_starts "
                        f"{args.modulation_starts}: the method would never act. Give an end >= the start")
    check_device(args.device, args.gpu_ids)


def check_device(device: str, gpu_ids) -> None:
    """--device / --gpu_ids name a device this machine has."""
    if device != "auto":
        try:
            parsed = torch.device(device)
        except RuntimeError:
            raise DataError(f"--device {device}: not a device. Use auto, cpu, cuda or cuda:N") from None
        if parsed.type == "cuda" and not torch.cuda.is_available():
            raise DataError(f"--device {device}: no CUDA GPU is visible on this machine. Use --device cpu (or auto)")
        if parsed.type == "cuda" and parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise DataError(f"--device {device}: this machine has {torch.cuda.device_count()} GPU(s), "
                            f"numbered from 0")
    if gpu_ids is not None:
        first = str(gpu_ids).split(",")[0].strip()
        if not first.isdigit():
            raise DataError(f"--gpu_ids {gpu_ids}: expected GPU numbers such as 0 or 0,1")


def add_clip_args(group, num_frames: int, audio_seconds: float, audio_help: str, frame_pick: str = "even",
                  frame_augment: str = "clip", allow_overlap: bool = False) -> None:
    """Flags of every wav + frames dataset (CREMA-D, SSW60, Kinetics-Sounds, AVE, VGGSound), with the
    dataset's defaults (frame_pick / frame_augment: its reference loader's, or this project's for CREMA-D / SSW60)."""
    frames_help = "frames per clip, spread evenly over the clip"  # CREMA-D's / SSW60's help, as it was
    if frame_pick != "even":
        frames_help += ", one per equal part (see --frame_pick)"
    group.add_argument("--num_frames", type=POSITIVE_INT, default=num_frames, help=frames_help)
    group.add_argument("--frame_pick", choices=list(FRAME_PICKS), default=frame_pick,
                       help="which of a clip's sorted frames, with n frames and seg = n // num_frames: segments = "
                            "the GeWu-Lab loaders' (BalanceBenchmark KS / VGGSound, Valuate-and-Enhance KS): training "
                            "draws a random frame inside each segment, testing takes frame i*seg + max(seg//2, 1) (1, "
                            "4, 7 of 10), clips of <= 2 x num_frames frames use their first; fixed = OGM-GE's "
                            "dataset.py: frame i*seg + 1 (1, 4, 7 of 10) for training and testing; even = this "
                            "project's: the centres of num_frames equal parts (2, 6, 9 of 10) for training and testing")
    group.add_argument("--frame_augment", choices=list(FRAME_AUGMENTS), default=frame_augment,
                       help="training crop/flip: frame = drawn for each frame (the reference loaders transform every "
                            "frame on its own); clip = one draw shared by all frames of a clip (this project's)")
    group.add_argument("--image_size", type=IMAGE_SIDE, default=224, help="frame side after crop/resize")
    group.add_argument("--audio_seconds", type=SECONDS, default=audio_seconds, help=audio_help)
    group.add_argument("--skip_missing", type=str2bool, default=False, metavar="BOOL",
                       help="skip listed clips whose wav or frames are missing (and say how many) instead of stopping")
    add_list_check_args(group, allow_overlap)
    add_classification_args(group)


def add_list_check_args(group, allow_overlap: bool = False) -> None:
    """The flags that let lists with repeated or shared clips through (utils/datasets.py check_lists)."""
    group.add_argument("--allow_overlap", type=str2bool, default=allow_overlap, metavar="BOOL",
                       help="keep clips that are in two of the train / validation / test lists (said in one line); "
                            "without it such lists are refused")
    group.add_argument("--allow_duplicates", type=str2bool, default=False, metavar="BOOL",
                       help="keep clips listed twice in one list (said in one line); without it such lists are refused")


def add_classification_args(group) -> None:
    """Flags of the labelled-test-split datasets (CREMA-D, SSW60)."""
    group.add_argument("--best_metric", choices=["acc", "acc_linear"], default="acc",
                       help="what picks best.pt: acc (the fused prediction the model trains: the cosine sum under "
                            "MMCosine) or acc_linear (the fusion layer's plain output, as the released main_CD.py)")


def clip_options(args) -> dict:
    """The AVClipDataset keyword arguments those flags set."""
    return dict(image_size=args.image_size, num_frames=args.num_frames, audio_seconds=args.audio_seconds,
                skip_missing=args.skip_missing, frame_pick=args.frame_pick, frame_augment=args.frame_augment)


def add_shared_args(parser: argparse.ArgumentParser, recipe: str, epochs: int, batch_size: int,
                    lr_decay_step: int, modalities=AUDIO_VISUAL) -> None:
    """Every group that is not dataset-specific: model, method, training, run directory, speed.
    `recipe` names where the dataset's training defaults come from (e.g. the released main_CD.py);
    `modalities` are the dataset's (dataset.modalities): flags per modality are named after them."""
    names = [m.name for m in modalities]
    add_model_args(parser, names)
    add_method_args(parser, names)
    add_training_args(parser, recipe, epochs=epochs, batch_size=batch_size, lr_decay_step=lr_decay_step)
    add_run_args(parser)
    add_speed_args(parser)


def add_model_args(parser: argparse.ArgumentParser, modalities: Sequence[str]) -> None:
    g = parser.add_argument_group("model")
    # None means: the seed's default for a new run, or the checkpoint's value when one is loaded.
    g.add_argument("--fusion_method", choices=sorted(FUSIONS), default=None,
                   help="how the modalities' 512-d features are fused: sum / concat for any number of modalities, "
                        "film / gated for two (default concat, or the checkpoint's)")
    g.add_argument("--mmcosine", type=str2bool, default=None, metavar="BOOL",
                   help="use the MMCosine head: per-modality scaled cosine logits (default False, or the checkpoint's)")
    g.add_argument("--scaling", type=POSITIVE, default=None,
                   help="MMCosine scale s (paper default 10)")
    g.add_argument("--bn_init", choices=list(BN_INITS), default="normal",
                   help="initial BatchNorm weights of the ResNet encoders: normal = N(1, 0.02) as the release's "
                        "backbones, constant = 1 (torchvision)")
    for name in modalities:
        g.add_argument(f"--{name}_pretrain", default=None,
                       help=f"{name} encoder weights to start from (.pt: a run's checkpoint or a state dict)")


def add_method_args(parser: argparse.ArgumentParser, modalities: Sequence[str]) -> None:
    g = parser.add_argument_group("balancing method (combinable with --mmcosine)")
    g.add_argument("--method", choices=sorted(METHODS), default="joint",
                   help="joint: plain joint training; unimodal (with --modality) / audio_only / visual_only: uni-modal "
                        "baselines; ogm / ogm_ge: "
                        "gradient modulation; gblending: loss weights per head; greedy: MMTM mid-fusion with re-balancing "
                        "steps; mslr: per-encoder learning rates; mmpareto: Pareto-combined per-loss gradients; pmr: "
                        "prototype cross-entropy for the weaker modality; agm: Shapley-based gradient modulation; "
                        "inforeg: proximal hold on the leading encoder; mbsd, cml: extra loss terms; opm: feature drop "
                        "of the leading modality; umt: distillation from uni-modal teachers; ume: ensemble of two "
                        "uni-modal runs; mla: alternating uni-modal steps through a shared head; reconboost: staged "
                        "boosting, one modality at a time; relearning: soft re-initialisation by k-means purity gaps; "
                        "sample_level / modality_level: Shapley-valued resampling; amco: class masks of the dependent "
                        "modality; lfm: cross-entropy + alignment with a learned weight (README: methods table)")
    g.add_argument("--modality", choices=list(modalities), default=None,
                   help="the uni-modal baseline on this modality (--method unimodal; audio_only / visual_only on the "
                        "audio-visual scripts): a uni-modal model, e.g. to pretrain an encoder")
    g.add_argument("--alpha", type=NONNEGATIVE, default=0.8, help="OGM modulation strength (0.8: OGM-GE's README for CREMA-D)")
    g.add_argument("--modulation_starts", type=NONNEGATIVE_INT, default=0,
                   help="first epoch the method acts in (ogm, ogm_ge, pmr, mbsd, cml, umt), 0-based as in the authors' "
                        "loops (0 = our epoch 1)")
    g.add_argument("--modulation_ends", type=NONNEGATIVE_INT, default=None,
                   help="last epoch the method acts in, 0-based and included as in the authors' loops (50 = our "
                        "epoch 51); default: the method's own (ogm/ogm_ge 50 as OGM-GE's main.py, pmr 70 as PMR's "
                        "CREMA-D script, mbsd/cml/umt 80 as BalanceBenchmark; the others act in every epoch)")
    g.add_argument("--ogm_coefficient", choices=["paper", "shifted"], default="paper",
                   help="dominant modality's coefficient: paper = 1 - tanh(alpha * relu(rho)) (Eq. 10, the authors' code); "
                        "shifted = 1 - tanh(alpha * relu(rho - 1)) (this project's earlier variant)")
    g.add_argument("--gb_holdout", type=FRACTION, default=0.1,
                   help="G-Blending: fraction of the train split held out to measure generalisation")
    g.add_argument("--gb_every", type=POSITIVE_INT, default=5, help="G-Blending: re-estimate the loss weights every N epochs")
    g.add_argument("--greedy_epsilon", type=NONNEGATIVE, default=0.01,
                   help="Greedy: imbalance tolerance on the conditional learning speed gap before re-balancing")
    g.add_argument("--greedy_window", type=POSITIVE_INT, default=5, help="Greedy: steps in one re-balancing window")
    g.add_argument("--greedy_starts", type=POSITIVE_INT, default=2, help="Greedy: first epoch (1-based) that may re-balance")
    g.add_argument("--greedy_loss", choices=["fused", "branches"], default="fused",
                   help="Greedy: cross-entropy of the fused logits (as the other methods, and BalanceBenchmark) or the "
                        "sum of each branch's cross-entropy (nyukat's code)")
    g.add_argument("--greedy_main_with_head", type=str2bool, default=False, metavar="BOOL",
                   help="Greedy: count each modality's classifier weights in its main path's learning speed (nyukat's "
                        "code) instead of the encoder alone")
    g.add_argument("--mslr_unimodal_runs", nargs=len(modalities), default=None,
                   metavar=tuple(f"{m.upper()}_RUN" for m in modalities),
                   help="MSLR: run directories of each modality's uni-modal run, in this order; each encoder trains at "
                        "the learning rate of its uni-modal run (the paper's fixed strategy)")
    for name in modalities:
        g.add_argument(f"--mslr_{name}_scale", type=POSITIVE, default=None,
                       help=f"MSLR: {name} encoder lr = learning_rate x this (1 when only other scales are given)")
    g.add_argument("--mslr_strategy", choices=["fixed", "dynamic"], default="fixed",
                   help="MSLR: fixed rates, or dynamic: every --mslr_every epochs each encoder's rate x (latest / "
                        "mean of the last --mslr_every held-out accuracies of its own head)")
    g.add_argument("--mslr_every", type=POSITIVE_INT, default=5, help="MSLR dynamic: adjust every N epochs, over N measurements")
    g.add_argument("--mslr_holdout", type=FRACTION, default=0.1,
                   help="MSLR dynamic: fraction of the train split held out to measure each modality")
    for method in METHODS.values():
        method.add_args(g, tuple(modalities))


def add_training_args(parser: argparse.ArgumentParser, recipe: str, epochs: int, batch_size: int,
                      lr_decay_step: int) -> None:
    g = parser.add_argument_group(f"training (defaults: {recipe})")
    g.add_argument("--train", action="store_true", help="train; without it, evaluate --ckpt_path once")
    g.add_argument("--epochs", type=POSITIVE_INT, default=epochs, help="training epochs")
    g.add_argument("--batch_size", type=BATCH, default=batch_size, help="global batch (all processes together)")
    g.add_argument("--optimizer", choices=["sgd", "adam", "adamw", "adagrad"], default="sgd",
                   help="SGD with momentum, Adam, AdamW (decoupled weight decay: OPM's recipe) or Adagrad (a PMR script)")
    g.add_argument("--learning_rate", type=NONNEGATIVE, default=1e-3,
                   help="initial learning rate (0 keeps the weights, e.g. to check a pipeline)")
    g.add_argument("--momentum", type=MOMENTUM, default=0.9, help="SGD momentum")
    g.add_argument("--weight_decay", type=NONNEGATIVE, default=1e-4, help="L2 weight decay of the optimizer")
    g.add_argument("--adam_betas", type=MOMENTUM, nargs=2, default=[0.9, 0.999], metavar=("BETA1", "BETA2"),
                   help="Adam / AdamW betas (PMR's scripts: 0.9 0.99)")
    g.add_argument("--lr_decay_step", type=POSITIVE_INT, default=lr_decay_step, help="StepLR period in epochs")
    g.add_argument("--lr_decay_ratio", type=DECAY, default=0.1, help="StepLR factor")
    g.add_argument("--val_split", default=None, metavar="FRACTION|CSV",
                   help="hold a validation set out of the train split (a fraction, stratified and fixed by the seed, or "
                        "a csv of its clips) and choose best.pt on it; without it best.pt is the best test epoch, the "
                        "papers' protocol")
    g.add_argument("--random_seed", type=NONNEGATIVE_INT, default=0, help="seeds the model, shuffling and augmentation")
    g.add_argument("--num_workers", type=NONNEGATIVE_INT, default=0, help="DataLoader worker processes")


def add_run_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("run directory, checkpoints and logging")
    g.add_argument("--run_dir", default=None,
                   help="where args.json, metrics.jsonl, last.pt, best.pt and events go (default runs/<dataset>/<name>)")
    g.add_argument("--ckpt_path", default=None,
                   help="without --train: the checkpoint to evaluate; with --train: same as --run_dir (as in the original)")
    g.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue the run in RUN_DIR from its last.pt")
    g.add_argument("--use_tensorboard", type=str2bool, default=True, metavar="BOOL", help="write TensorBoard events")
    g.add_argument("--tensorboard_path", default=None, help="event folder (default RUN_DIR/tensorboard)")
    g.add_argument("--device", default="auto", help="auto (CUDA if present, else CPU), cpu, cuda or cuda:N")
    g.add_argument("--gpu_ids", default=None,
                   help="with --device auto: the GPU to use, e.g. '0' (several GPUs: launch with torchrun)")
    g.add_argument("--no_progress", action="store_true", help="no progress bars (logs only)")
    g.add_argument("--check_files", type=str2bool, default=True, metavar="BOOL",
                   help="read the header of every listed wav and image (in parallel) before training or evaluation, so "
                        "a corrupt file stops the run at once, named with all the others")
    g.add_argument("--save_features", type=str2bool, default=False, metavar="BOOL",
                   help="write test-set features and logits at evaluation (features_last.pt / features_best.pt, "
                        "or features_<checkpoint>.pt beside an evaluated checkpoint)")


def add_speed_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("speed (all off by default; CPU stays exact with them off)")
    g.add_argument("--amp", choices=["off", "bf16", "fp16"], default="off",
                   help="mixed precision autocast (fp16 adds a gradient scaler)")
    g.add_argument("--cudnn_deterministic", type=str2bool, default=False, metavar="BOOL",
                   help="deterministic cuDNN as the release (bit-identical GPU reruns; slower); off: cudnn.benchmark")
    g.add_argument("--channels_last", type=str2bool, default=False, metavar="BOOL",
                   help="NHWC memory layout for the convolutions (faster with AMP on recent GPUs)")
    g.add_argument("--compile", type=str2bool, default=False, metavar="BOOL", help="torch.compile the model")
    g.add_argument("--compile_mode", choices=["default", "reduce-overhead", "max-autotune"], default="default",
                   help="torch.compile mode; reduce-overhead adds CUDA graphs (fastest at batch 64 on an H100)")
    g.add_argument("--cache_dir", default=None,
                   help="decode every clip once into memory-mapped files here and train from them (exactly what the "
                        "plain path decodes: the same numbers)")
    g.add_argument("--cache_frame_size", type=IMAGE_SIDE, default=None,
                   help="a lossy cache, smaller and faster: frames whose short side is larger are downscaled once to "
                        "this, audio features kept as float16; results then differ a little from the plain path's")


def apply_modality_shorthand(args) -> None:
    """--modality NAME means --method unimodal on it (named NAME_only where that method exists: audio_only,
    visual_only), and cannot be combined with another method."""
    if getattr(args, "modality", None) is None or args.method == "unimodal":  # unimodal reads --modality itself
        return
    wanted = f"{args.modality}_only" if f"{args.modality}_only" in METHODS else "unimodal"
    if args.method not in ("joint", wanted):
        raise DataError(f"--modality {args.modality} trains the uni-modal baseline ({wanted}); "
                        f"it cannot be combined with --method {args.method}")
    args.method = wanted


# Flags about where and how this invocation runs, not about the data or the model: evaluating a
# checkpoint takes them from the command line (or their defaults), never from the checkpoint.
RUNTIME_FLAGS = frozenset({"train", "ckpt_path", "resume", "run_dir", "device", "gpu_ids", "no_progress", "num_workers",
                           "batch_size", "save_features", "cache_dir", "cache_frame_size", "compile", "compile_mode",
                           "channels_last", "use_tensorboard", "tensorboard_path", "cudnn_deterministic",
                           "check_files"})


# What runs did before these flags existed (their defaults now differ): a checkpoint whose args lack one
# is evaluated and resumed as it was trained, not with today's default.
BEFORE_THE_FLAG = {"frame_pick": "even", "frame_augment": "clip", "segment": "whole", "agm_clip": 0.0,
                   "relearn_train_view": "augmented", "pmr_prototype_set": "train"}


def restore_settings(args, saved: dict, typed: Set[str], keep=RUNTIME_FLAGS) -> list:
    """Every setting of the run that made a checkpoint (its args) that the user did not type, except
    those in `keep`. Returns one line per typed setting that differs from the training value."""
    notes = []
    if saved:
        saved = {**{k: v for k, v in BEFORE_THE_FLAG.items() if hasattr(args, k)}, **saved}
    for key, value in saved.items():
        if key in keep:
            continue
        if key not in typed:
            setattr(args, key, value)
        elif getattr(args, key, value) != value:
            notes.append(f"note: --{key} {getattr(args, key)} differs from the run's own {value}")
    return notes


def explicit_flags(parser: argparse.ArgumentParser, argv: Sequence[str]) -> Set[str]:
    """Names of the options the user actually typed (so resume/eval only override those)."""
    shadow = argparse.ArgumentParser(add_help=False)
    for action in parser._actions:  # argparse offers no public way to copy actions
        if action.option_strings and not isinstance(action, argparse._HelpAction):
            kwargs = {"dest": action.dest, "default": argparse.SUPPRESS}
            if action.nargs == 0:
                kwargs["action"] = "store_const"
                kwargs["const"] = action.const
            else:
                kwargs["nargs"] = action.nargs
            shadow.add_argument(*action.option_strings, **kwargs)
    known, _ = shadow.parse_known_args(argv)
    return set(vars(known))
