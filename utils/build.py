"""Building what a run needs from its flags: device, model, optimizer, and the wrapped
(SyncBN / channels-last / DDP / compiled) versions used for training and evaluation."""
from typing import Optional

import torch
from torch.nn.parallel import DistributedDataParallel

from dataset.errors import DataError
from models import MultiModalClassifier
from models.classifier import check_fusion

from . import distributed

MODEL_DEFAULTS = {"fusion_method": "concat", "mmcosine": False, "scaling": 10.0}


def resolve_device(args, dist_device: Optional[torch.device] = None) -> torch.device:
    device = pick_device(args, dist_device)
    if getattr(args, "amp", "off") == "fp16" and device.type == "cpu":
        raise DataError("--amp fp16 on a CPU: float16 has no fast CPU kernels (a run is many times slower) and its "
                        "gradient scaler is meant for GPUs. Use --amp bf16 (or off) on a CPU")
    return device


def pick_device(args, dist_device: Optional[torch.device] = None) -> torch.device:
    if dist_device is not None:
        return dist_device
    if args.device != "auto":
        return torch.device(args.device)
    if torch.cuda.is_available():
        gpu = int(str(args.gpu_ids).split(",")[0]) if args.gpu_ids else 0
        return torch.device("cuda", gpu)
    return torch.device("cpu")


def fill_model_flags(args, ckpt: Optional[dict], dataset_defaults: Optional[dict] = None) -> None:
    """Model flags left unset take the checkpoint's value, else the original code's default for this
    dataset. Fusion, head and scale come from the checkpoint's model_config, a dataset's own model
    flags (e.g. the speaker encoder's) from the arguments it was trained with."""
    from_config = {"fusion_method": "fusion", "mmcosine": "mmcosine", "scaling": "scaling"}
    saved = ckpt.get("args", {}) if ckpt else {}
    for flag, default in {**MODEL_DEFAULTS, **(dataset_defaults or {})}.items():
        if getattr(args, flag) is not None:
            continue
        if ckpt and flag in from_config:
            setattr(args, flag, ckpt["model_config"][from_config[flag]])
        else:
            setattr(args, flag, saved.get(flag, default))


def model_config(args, classes, model) -> dict:
    """What a checkpoint records of the model: the flags' head and the architecture a method gave it."""
    return {"n_classes": len(classes), "classes": list(classes), "fusion": args.fusion_method,
            "mmcosine": bool(args.mmcosine), "scaling": float(args.scaling), "modalities": list(model.modalities),
            "dataset_modalities": list(model.names),
            "mid_fusion": model.mid_fusion_name, "unimodal_heads": model.unimodal_heads is not None,
            "head": model.head_spec}


def match_checkpoint_architecture(model, ckpt_config: dict) -> None:
    """Give a freshly built model the uni-modal restriction, mid-level fusion and method head its checkpoint had."""
    modalities = ckpt_config.get("modalities", ["audio", "visual"])
    if len(modalities) == 1:  # a uni-modal baseline's checkpoint
        model.keep_only(modalities[0])
    if ckpt_config.get("mid_fusion"):
        model.add_mid_fusion(ckpt_config["mid_fusion"])
    if ckpt_config.get("unimodal_heads"):
        model.add_unimodal_heads()
    if ckpt_config.get("head"):
        model.set_head(ckpt_config["head"])


def build_model(args, n_classes: int, encoders: dict) -> MultiModalClassifier:
    """The flags' fusion and head over the dataset's encoders ({modality name: encoder}, in its order)."""
    try:
        check_fusion(args.fusion_method, len(encoders))
    except ValueError as err:
        raise DataError(str(err)) from None
    return MultiModalClassifier(n_classes, encoders, fusion=args.fusion_method, mmcosine=args.mmcosine,
                                scaling=args.scaling)


def optimizer_state_copies(args) -> int:
    """How many tensors of a parameter's size the --optimizer keeps per parameter (for disk estimates)."""
    return {"sgd": int(args.momentum > 0), "adagrad": 1}.get(args.optimizer, 2)  # Adam / AdamW: two moments


def build_optimizer(args, param_groups):
    """The --optimizer over the method's parameter groups (groups may carry their own lr)."""
    if args.optimizer == "sgd":
        return torch.optim.SGD(param_groups, lr=args.learning_rate, momentum=args.momentum,
                               weight_decay=args.weight_decay)
    if args.optimizer == "adagrad":
        return torch.optim.Adagrad(param_groups, lr=args.learning_rate, weight_decay=args.weight_decay)
    adam = torch.optim.AdamW if args.optimizer == "adamw" else torch.optim.Adam
    return adam(param_groups, lr=args.learning_rate, betas=tuple(args.adam_betas), weight_decay=args.weight_decay)


def prepare_model(model, device: torch.device, channels_last: bool, compile_model: bool,
                  compile_mode: str = "default", deterministic: bool = False):
    """Returns (raw, train_model, eval_model): raw holds the weights (checkpoints, metrics);
    train_model is DDP-wrapped when distributed; eval_model never is, since processes
    evaluate uneven shards and DDP's per-forward buffer broadcast would wait forever."""
    if distributed.is_distributed():
        model = distributed.sync_batchnorm(model, device)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if device.type == "cuda":
        # Fixed input shapes: let cuDNN pick the fastest kernels, unless asked for the release's
        # deterministic cuDNN (bit-identical reruns, slower).
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = deterministic
    train_model = model
    if distributed.is_distributed():
        train_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    eval_model = model
    if compile_model:
        train_model = torch.compile(train_model, mode=compile_mode)
        eval_model = torch.compile(model, mode=compile_mode)
    return model, train_model, eval_model
