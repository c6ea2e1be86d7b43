"""The flow every entry script shares: evaluate a checkpoint, or train (fresh or resumed)
with a run directory of args.json, metrics.jsonl, last.pt, best.pt and TensorBoard events.
Only the main process writes files and prints; under torchrun every process trains.

An entry script supplies a `DataSource`: how to build its train/test datasets from the
parsed flags. Everything else lives here.
"""
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional

import torch

from dataset.errors import DataError

from . import distributed
from .build import build_model, build_optimizer, fill_model_flags, model_config, prepare_model, resolve_device
from .caching import attach_caches
from .checkpoint import check_compatible, load_checkpoint, load_encoder_weights, save_atomic
from .engine import evaluate, train_one_epoch
from .logger import RunLogger
from .methods import build_method
from .metrics import classifier_weight_norms
from .precision import Precision
from .sampling import SeededSampler, make_loader
from .seed import epoch_seed, seed_everything


@dataclass
class Datasets:
    classes: List[str]
    test: object
    train: Optional[object] = None
    notes: List[str] = field(default_factory=list)  # e.g. "generated a split", "skipped 3 clips"
    files: dict = field(default_factory=dict)      # name -> writer(path): files worth keeping in the run dir

    def note_skipped(self) -> "Datasets":
        """Say how many clips --skip_missing left out of each split."""
        for split in (self.train, self.test):
            if split is not None and getattr(split, "n_skipped", 0):
                self.notes.append(f"--skip_missing: skipped {split.n_skipped} clip(s) without wav or frames")
        return self


@dataclass
class DataSource:
    name: str                                       # short dataset name, used for default run dirs
    build: Callable[[object, bool], Datasets]       # (args, with_train) -> Datasets


def say(*lines) -> None:
    if distributed.is_main_process():
        print(*lines, sep="\n", flush=True)


def format_stats(prefix: str, stats: dict) -> str:
    return (f"{prefix} loss {stats['loss']:.4f} acc {stats['acc']:.2f}% "
            f"(audio {stats['acc_a']:.2f}%, visual {stats['acc_v']:.2f}%)")


def per_process_batch(args) -> int:
    n = distributed.world_size()
    if args.batch_size % n:
        raise DataError(f"--batch_size {args.batch_size} is the global batch and must divide by the {n} processes")
    return args.batch_size // n


def eval_loader_for(args, dataset, device):
    # Each process takes every N-th clip, no padding: reduced sums cover the set exactly once.
    shard = list(range(distributed.rank(), len(dataset), distributed.world_size()))
    return make_loader(dataset, per_process_batch(args), shard, args.num_workers, device.type == "cuda")


def evaluate_checkpoint(args, source: DataSource, dist_device=None) -> dict:
    if args.ckpt_path is None:
        raise DataError("nothing to do: pass --train to train, or --ckpt_path RUN/best.pt to evaluate a checkpoint")
    ckpt = load_checkpoint(args.ckpt_path)
    fill_model_flags(args, ckpt["model_config"])
    data = source.build(args, False)
    attach_caches(data, args, source.name, not args.no_progress)
    model = build_model(args, len(data.classes))
    modalities = ckpt["model_config"].get("modalities", ["audio", "visual"])
    if len(modalities) == 1:  # a uni-modal baseline's checkpoint
        model.keep_only(modalities[0])
    check_compatible(model_config(args, data.classes, modalities), ckpt["model_config"], args.ckpt_path)
    model.load_state_dict(ckpt["model"])
    device = resolve_device(args, dist_device)
    model, _, eval_model = prepare_model(model, device, args.channels_last, args.compile, args.compile_mode)
    stats, features = evaluate(eval_model, eval_loader_for(args, data.test, device), device, Precision(args.amp, device),
                               show_progress=not args.no_progress and distributed.is_main_process(),
                               channels_last=args.channels_last, weights=model.classifier_weights())
    say(format_stats(f"{args.ckpt_path} (epoch {ckpt['epoch']}) test", stats))
    if args.save_features and distributed.is_main_process():
        path = Path(args.ckpt_path).with_name(f"features_{Path(args.ckpt_path).stem}.pt")
        save_features(path, features, model, data.classes)
        say(f"test features written to {path}")
    return stats


def save_features(path: Path, features: dict, model, classes) -> None:
    """Test-set features, logits and labels, with the classifier weights, for plots and probes."""
    w_a, w_v = model.classifier_weights()
    save_atomic({**features, "W_a": w_a.detach().float().cpu(), "W_v": w_v.detach().float().cpu(),
                 "classes": list(classes)}, path)


def save_epoch_files(run_dir: Path, state: dict, is_best: bool, features, model, classes) -> None:
    """last.pt (and best.pt on a new best), plus the matching feature files when features are given."""
    names = ["last", "best"] if is_best else ["last"]
    for name in names:
        save_atomic(state, run_dir / f"{name}.pt")
        if features is not None:
            save_features(run_dir / f"features_{name}.pt", features, model, classes)


def default_run_dir(args, source: DataSource) -> Path:
    head = "mmcosine-s{:g}".format(args.scaling) if args.mmcosine else "baseline"
    method = "" if args.method == "joint" else f"{args.method}-"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / source.name / f"{method}{args.fusion_method}-{head}-seed{args.random_seed}-{stamp}"


def prepare_run_dir(args, source: DataSource) -> Path:
    if args.resume is not None:
        return Path(args.resume)
    run_dir = Path(args.run_dir or args.ckpt_path or default_run_dir(args, source))
    if distributed.is_distributed():  # every process must agree on the (time-stamped) name
        shared = [str(run_dir)]
        torch.distributed.broadcast_object_list(shared, src=0)
        run_dir = Path(shared[0])
    if (run_dir / "last.pt").exists():
        raise DataError(f"{run_dir} already holds a run (last.pt). Continue it with --resume {run_dir}, "
                        "or choose another --run_dir")
    distributed.barrier()  # no process may see the directory made by another one below
    if distributed.is_main_process():
        run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def train(args, source: DataSource, dist_device=None) -> dict:
    main = distributed.is_main_process()
    resume_state = load_checkpoint(Path(args.resume) / "last.pt") if args.resume else None
    fill_model_flags(args, resume_state["model_config"] if resume_state else None)
    run_dir = prepare_run_dir(args, source)
    seed_everything(args.random_seed)
    data = source.build(args, True)
    say(*data.notes)
    attach_caches(data, args, source.name, not args.no_progress)
    if main:
        for name, write in data.files.items():
            write(run_dir / name)
        (run_dir / "args.json").write_text(json.dumps(vars(args), indent=2, sort_keys=True) + "\n")

    device = resolve_device(args, dist_device)
    model = build_model(args, len(data.classes))
    method = build_method(args)
    method.configure_model(model)
    data.train, holdout = method.split_train(data.train, args.random_seed)
    config = model_config(args, data.classes, model.modalities)
    for path, encoder, prefix in ((args.audio_pretrain, model.audio_encoder, "audio_encoder."),
                                  (args.visual_pretrain, model.visual_encoder, "visual_encoder.")):
        if path is not None and resume_state is None:
            say(load_encoder_weights(encoder, path, prefix))
    if resume_state is not None:
        check_compatible(config, resume_state["model_config"], Path(args.resume) / "last.pt")
        model.load_state_dict(resume_state["model"])
    model, train_model, eval_model = prepare_model(model, device, args.channels_last, args.compile, args.compile_mode)
    optimizer = build_optimizer(args, method.param_groups(model))
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, args.lr_decay_step, args.lr_decay_ratio)
    precision = Precision(args.amp, device)
    start_epoch, best = 1, {"acc": -1.0, "epoch": 0}
    if resume_state is not None:
        optimizer.load_state_dict(resume_state["optimizer"])
        scheduler.load_state_dict(resume_state["scheduler"])
        precision.scaler.load_state_dict(resume_state.get("scaler", {}))
        method.load_state_dict(resume_state.get("method", {}))
        start_epoch, best = resume_state["epoch"] + 1, resume_state["best"]
        say(f"resuming {run_dir} at epoch {start_epoch}")

    train_sampler = SeededSampler(data.train, args.random_seed, shuffle=True,
                                  num_replicas=distributed.world_size(), rank=distributed.rank())
    train_loader = make_loader(data.train, per_process_batch(args), train_sampler, args.num_workers,
                               device.type == "cuda", train=True)
    eval_loader = eval_loader_for(args, data.test, device)
    method.measure = lambda dataset: evaluate(eval_model, eval_loader_for(args, dataset, device), device, precision,
                                              False, args.channels_last)[0]
    logger = RunLogger(run_dir, args.use_tensorboard, args.tensorboard_path,
                       resume_from_epoch=start_epoch if resume_state else None) if main else None
    show = not args.no_progress and main
    held = f" + {len(holdout)} held out" if holdout is not None else ""
    say(f"run directory: {run_dir}  ({len(data.train)} train{held} / {len(data.test)} test clips, device {device}, "
        f"{distributed.world_size()} process(es))")
    try:
        for epoch in range(start_epoch, args.epochs + 1):
            train_sampler.set_epoch(epoch)
            torch.manual_seed(epoch_seed(args.random_seed, epoch))
            lrs = {f"lr_{g['name']}" if "name" in g else "lr": g["lr"] for g in optimizer.param_groups}
            method.start_epoch(epoch, model)
            started = time.perf_counter()
            train_stats = train_one_epoch(train_model, train_loader, optimizer, precision, device, epoch, method,
                                          model, show, args.channels_last)
            train_stats["seconds"] = time.perf_counter() - started
            scheduler.step()
            started = time.perf_counter()
            test_stats, features = evaluate(eval_model, eval_loader, device, precision, show, args.channels_last,
                                            weights=model.classifier_weights())
            test_stats["seconds"] = time.perf_counter() - started
            if test_stats["acc"] > best["acc"]:
                best = {"acc": test_stats["acc"], "epoch": epoch}
            if main:
                state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                         "scheduler": scheduler.state_dict(), "scaler": precision.scaler.state_dict(),
                         "method": method.state_dict(), "epoch": epoch, "best": best, "model_config": config,
                         "args": vars(args), "dataset": source.name}
                save_epoch_files(run_dir, state, best["epoch"] == epoch, features if args.save_features else None,
                                 model, data.classes)
                record = {**lrs, **{f"train_{k}": v for k, v in train_stats.items()},
                          **{f"test_{k}": v for k, v in test_stats.items()},
                          **classifier_weight_norms(model), "best_acc": best["acc"], "best_epoch": best["epoch"]}
                logger.log_epoch(epoch, record)
            say(f"epoch {epoch}/{args.epochs}  {format_stats('train', train_stats)} | "
                f"{format_stats('test', test_stats)} | best {best['acc']:.2f}% @ {best['epoch']}")
    finally:
        if logger is not None:
            logger.close()
    distributed.barrier()
    return {"run_dir": str(run_dir), "best": best}
