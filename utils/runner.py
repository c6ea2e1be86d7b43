"""The flow every entry script shares: evaluate a checkpoint, or train (fresh or resumed)
with a run directory of args.json, metrics.jsonl, last.pt, best.pt and TensorBoard events.

An entry script supplies a `DataSource`: how to build its train/test datasets and model
inputs from the parsed flags. Everything else lives here.
"""
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional

import torch

from dataset.errors import DataError
from models import AVClassifier

from .checkpoint import check_compatible, load_checkpoint, load_encoder_weights, save_atomic
from .engine import evaluate, train_one_epoch
from .logger import RunLogger
from .metrics import classifier_weight_norms
from .sampling import SeededSampler, make_loader
from .seed import epoch_seed, seed_everything

MODEL_DEFAULTS = {"fusion_method": "concat", "mmcosine": False, "scaling": 10.0}


@dataclass
class Datasets:
    classes: List[str]
    test: object
    train: Optional[object] = None
    notes: List[str] = field(default_factory=list)  # e.g. "generated a split", "skipped 3 clips"
    files: dict = field(default_factory=dict)      # name -> writer(path): files worth keeping in the run dir


@dataclass
class DataSource:
    name: str                                       # short dataset name, used for default run dirs
    build: Callable[[object, bool], Datasets]       # (args, with_train) -> Datasets


def resolve_device(args) -> torch.device:
    if args.device != "auto":
        return torch.device(args.device)
    if torch.cuda.is_available():
        gpu = int(str(args.gpu_ids).split(",")[0]) if args.gpu_ids else 0
        return torch.device("cuda", gpu)
    return torch.device("cpu")


def build_model(args, n_classes: int) -> AVClassifier:
    return AVClassifier(n_classes, fusion=args.fusion_method, mmcosine=args.mmcosine, scaling=args.scaling)


def model_config(args, classes) -> dict:
    return {"n_classes": len(classes), "classes": list(classes), "fusion": args.fusion_method,
            "mmcosine": bool(args.mmcosine), "scaling": float(args.scaling)}


def fill_model_flags(args, ckpt_config: Optional[dict]) -> None:
    """Flags left unset take the checkpoint's value, else the seed's default."""
    from_ckpt = {"fusion_method": "fusion", "mmcosine": "mmcosine", "scaling": "scaling"}
    for flag, default in MODEL_DEFAULTS.items():
        if getattr(args, flag) is None:
            setattr(args, flag, ckpt_config[from_ckpt[flag]] if ckpt_config else default)


def format_stats(prefix: str, stats: dict) -> str:
    return (f"{prefix} loss {stats['loss']:.4f} acc {stats['acc']:.2f}% "
            f"(audio {stats['acc_a']:.2f}%, visual {stats['acc_v']:.2f}%)")


def evaluate_checkpoint(args, source: DataSource) -> dict:
    if args.ckpt_path is None:
        raise DataError("nothing to do: pass --train to train, or --ckpt_path RUN/best.pt to evaluate a checkpoint")
    ckpt = load_checkpoint(args.ckpt_path)
    fill_model_flags(args, ckpt["model_config"])
    data = source.build(args, False)
    model = build_model(args, len(data.classes))
    check_compatible(model_config(args, data.classes), ckpt["model_config"], args.ckpt_path)
    model.load_state_dict(ckpt["model"])
    device = resolve_device(args)
    model.to(device)
    loader = make_loader(data.test, args.batch_size, SeededSampler(data.test, 0, shuffle=False),
                         args.num_workers, device.type == "cuda")
    stats = evaluate(model, loader, device, show_progress=not args.no_progress)
    print(format_stats(f"{args.ckpt_path} (epoch {ckpt['epoch']}) test", stats))
    return stats


def default_run_dir(args, source: DataSource) -> Path:
    head = "mmcosine-s{:g}".format(args.scaling) if args.mmcosine else "baseline"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / source.name / f"{args.fusion_method}-{head}-seed{args.random_seed}-{stamp}"


def prepare_run_dir(args, source: DataSource) -> Path:
    if args.resume is not None:
        return Path(args.resume)
    run_dir = Path(args.run_dir or args.ckpt_path or default_run_dir(args, source))
    if (run_dir / "last.pt").exists():
        raise DataError(f"{run_dir} already holds a run (last.pt). Continue it with --resume {run_dir}, "
                        "or choose another --run_dir")
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def train(args, source: DataSource) -> dict:
    resume_state = load_checkpoint(Path(args.resume) / "last.pt") if args.resume else None
    fill_model_flags(args, resume_state["model_config"] if resume_state else None)
    run_dir = prepare_run_dir(args, source)
    seed_everything(args.random_seed)
    data = source.build(args, True)
    for note in data.notes:
        print(note)
    for name, write in data.files.items():
        write(run_dir / name)
    config = model_config(args, data.classes)
    (run_dir / "args.json").write_text(json.dumps(vars(args), indent=2, sort_keys=True) + "\n")

    device = resolve_device(args)
    model = build_model(args, len(data.classes))
    for path, encoder, prefix in ((args.audio_pretrain, model.audio_encoder, "audio_encoder."),
                                  (args.visual_pretrain, model.visual_encoder, "visual_encoder.")):
        if path is not None and resume_state is None:
            print(load_encoder_weights(encoder, path, prefix))
    model.to(device)
    optimizer = build_optimizer(args, model)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, args.lr_decay_step, args.lr_decay_ratio)
    start_epoch, best = 1, {"acc": -1.0, "epoch": 0}
    if resume_state is not None:
        check_compatible(config, resume_state["model_config"], Path(args.resume) / "last.pt")
        model.load_state_dict(resume_state["model"])
        optimizer.load_state_dict(resume_state["optimizer"])
        scheduler.load_state_dict(resume_state["scheduler"])
        start_epoch, best = resume_state["epoch"] + 1, resume_state["best"]
        print(f"resuming {run_dir} at epoch {start_epoch}")

    pin = device.type == "cuda"
    train_sampler = SeededSampler(data.train, args.random_seed, shuffle=True)
    train_loader = make_loader(data.train, args.batch_size, train_sampler, args.num_workers, pin, train=True)
    test_loader = make_loader(data.test, args.batch_size, SeededSampler(data.test, 0, shuffle=False),
                              args.num_workers, pin)
    logger = RunLogger(run_dir, args.use_tensorboard, args.tensorboard_path,
                       resume_from_epoch=start_epoch if resume_state else None)
    show = not args.no_progress
    print(f"run directory: {run_dir}  ({len(data.train)} train / {len(data.test)} test clips, device {device})")
    try:
        for epoch in range(start_epoch, args.epochs + 1):
            train_sampler.set_epoch(epoch)
            torch.manual_seed(epoch_seed(args.random_seed, epoch))
            lr = optimizer.param_groups[0]["lr"]
            train_stats = train_one_epoch(model, train_loader, optimizer, device, epoch, show)
            scheduler.step()
            test_stats = evaluate(model, test_loader, device, show)
            if test_stats["acc"] > best["acc"]:
                best = {"acc": test_stats["acc"], "epoch": epoch}
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict(), "epoch": epoch, "best": best,
                     "model_config": config, "args": vars(args)}
            if best["epoch"] == epoch:
                save_atomic(state, run_dir / "best.pt")
            save_atomic(state, run_dir / "last.pt")
            record = {"lr": lr, **{f"train_{k}": v for k, v in train_stats.items()},
                      **{f"test_{k}": v for k, v in test_stats.items()},
                      **classifier_weight_norms(model), "best_acc": best["acc"], "best_epoch": best["epoch"]}
            logger.log_epoch(epoch, record)
            print(f"epoch {epoch}/{args.epochs}  {format_stats('train', train_stats)} | "
                  f"{format_stats('test', test_stats)} | best {best['acc']:.2f}% @ {best['epoch']}", flush=True)
    finally:
        logger.close()
    return {"run_dir": str(run_dir), "best": best}


def build_optimizer(args, model):
    if args.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=args.learning_rate, momentum=args.momentum,
                               weight_decay=args.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay)
