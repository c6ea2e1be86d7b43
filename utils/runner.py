"""The flow every entry script shares: evaluate a checkpoint, or train (fresh or resumed)
with a run directory of args.json, metrics.jsonl, last.pt, best.pt and TensorBoard events.
Only the main process writes files and prints; under torchrun every process trains.

An entry script supplies a `DataSource`: how to build its train/test datasets from the
parsed flags and, where the dataset differs from classification with a labelled test split
(VoxCeleb: speaker batches, trial-list verification), the pieces that differ. Everything
else lives here.
"""
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

import torch

from dataset.errors import DataError
from dataset.modalities import AUDIO_VISUAL, Modality, names, tags
from models.encoders import audio_visual_encoders

from . import distributed, step_checkpoint, stop
from .args import restore_settings
from .build import (build_model, build_optimizer, fill_model_flags, match_checkpoint_architecture, model_config,
                    optimizer_state_copies, prepare_model, resolve_device)
from .caching import attach_caches
from .checkpoint import (check_compatible, check_free_space, load_checkpoint, load_encoder_weights, load_model_state,
                         save_atomic, state_bytes)
from .datasets import Datasets
from .engine import StoppedAtStep, evaluate, to_device, train_one_epoch
from .logger import RunLogger
from .methods import build_method
from .metrics import EpochMeter, classifier_weight_norms
from .precision import Precision
from .run_dir import Interrupted, Terminated, check_writable, resolve_run_dir, write_run_start
from .sampling import ResumableBatches, SeededSampler, make_batch_loader, make_loader
from .seed import epoch_seed, seed_everything


def say(*lines) -> None:
    if distributed.is_main_process() and lines:
        print(*lines, sep="\n", flush=True)


def format_stats(prefix: str, stats: dict, modalities=AUDIO_VISUAL) -> str:
    each = ", ".join(f"{m.name} {stats[f'acc_{m.tag}']:.2f}%" for m in modalities)
    return f"{prefix} loss {stats['loss']:.4f} acc {stats['acc']:.2f}% ({each})"


def classification_test(args, model, eval_model, dataset, device, precision, show, modalities=AUDIO_VISUAL):
    """Accuracy and the other statistics on a labelled split (test or validation), with its features and each
    modality's contribution (the accuracy with subsets of modalities zeroed, and Shapley values)."""
    return evaluate(eval_model, eval_loader_for(args, dataset, device), device, modalities, precision, show,
                    args.channels_last, weights=model.classifier_weights(), contributions=True)


@dataclass
class Selection:
    """Which statistic picks best.pt, and in which direction. It is read on the validation split
    when there is one (--val_split), else on the test split (the papers' protocol)."""
    key: str = "acc"
    higher_is_better: bool = True

    def improves(self, value: float, best: Dict) -> bool:
        if best.get(self.key) is None:
            return True
        return value > best[self.key] if self.higher_is_better else value < best[self.key]

    def record(self, epoch: int, selecting: Dict, test: Dict, split: str) -> Dict:
        """The new best: the selecting value and, when chosen on validation, the test value there."""
        best = {self.key: selecting[self.key], "epoch": epoch, "split": split}
        if split != "test":
            best[f"test_{self.key}"] = test[self.key]
        return best

    def describe(self, best: Dict) -> str:
        if best.get(self.key) is None:
            return "none yet"
        split = best.get("split", "test")
        text = f"{split} {self.key} {best[self.key]:.2f} @ {best['epoch']}"
        return text if split == "test" else f"{text} (test {best[f'test_{self.key}']:.2f})"


@dataclass
class DataSource:
    name: str                                       # short dataset name, used for default run dirs
    build: Callable[[object, bool], Datasets]       # (args, with_train) -> Datasets
    modalities: Tuple[Modality, ...] = AUDIO_VISUAL  # the dataset's modalities; items are (x_1..x_M, label)
    encoders: Callable = audio_visual_encoders      # args -> {modality name: encoder}, in the modalities' order
    # (args, train dataset, num_replicas, rank) -> a batch sampler with set_epoch, or None: seeded shuffling
    train_batches: Optional[Callable] = None
    # (args, raw model, eval model, test or validation set, device, precision, show progress, modalities)
    # -> (stats, features or None)
    test: Callable = classification_test
    describe_test: Callable[[str, dict, tuple], str] = format_stats
    # args -> which statistic picks best.pt (classification: --best_metric, acc by default)
    selection: Callable[[object], Selection] = lambda args: Selection(getattr(args, "best_metric", "acc"))
    model_defaults: Dict = field(default_factory=dict)   # flag -> default where this dataset's paper differs
    script: str = ""                                # the entry script, named when another script meets its runs


def per_process_batch(args) -> int:
    n = distributed.world_size()
    if args.batch_size % n:
        raise DataError(f"--batch_size {args.batch_size} is the global batch and must divide by the {n} processes")
    return args.batch_size // n


def eval_loader_for(args, dataset, device):
    # Each process takes every N-th clip, no padding: reduced sums cover the set exactly once.
    shard = list(range(distributed.rank(), len(dataset), distributed.world_size()))
    return make_loader(dataset, per_process_batch(args), shard, args.num_workers, device.type == "cuda")


@torch.no_grad()
def forward_batches(args, eval_model, dataset, indices, device, precision, modalities):
    """The model's outputs (eval mode, no gradient) on `indices` of a dataset, batch by batch, as
    (output, labels); each process takes every N-th of them, so sums over all processes cover them once."""
    eval_model.eval()
    mine = list(indices)[distributed.rank()::distributed.world_size()]
    for batch in make_loader(dataset, per_process_batch(args), mine, args.num_workers, device.type == "cuda"):
        inputs, labels = to_device(batch, modalities, device, args.channels_last)
        with precision.autocast():
            yield eval_model(inputs), labels


def check_same_script(ckpt: dict, source: DataSource, path) -> None:
    """A checkpoint (or run directory) made by another entry script is refused in one line naming that script."""
    made_by = ckpt.get("dataset")
    if made_by is not None and made_by != source.name:
        script = ckpt.get("script") or f"the {made_by} entry script"
        raise DataError(f"{path} was made by {script} ({made_by}), not {source.script or source.name}: "
                        f"evaluate or resume it with {script}")


def evaluate_checkpoint(args, source: DataSource, dist_device=None, typed=frozenset()) -> dict:
    """Evaluate --ckpt_path on the test split. Every setting of the run that made it (input shapes,
    model flags, data) comes from the checkpoint unless typed (`typed`: the flags the user typed)."""
    if args.ckpt_path is None:
        raise DataError("nothing to do: pass --train to train, or --ckpt_path RUN/best.pt to evaluate a checkpoint")
    ckpt = load_checkpoint(args.ckpt_path)
    check_same_script(ckpt, source, args.ckpt_path)
    if args.save_features:
        check_writable(Path(args.ckpt_path).parent, "--save_features True: the checkpoint's folder")
    if args.cache_dir is not None:
        check_writable(args.cache_dir, "--cache_dir")
    say(*restore_settings(args, ckpt.get("args", {}), typed))
    fill_model_flags(args, ckpt, source.model_defaults)
    data = source.build(args, False)
    if args.check_files:
        data.check_readable()
    say(*attach_caches(data, args, source.name, not args.no_progress))
    classes = data.classes or ckpt["model_config"]["classes"]  # verification test sets carry no classes
    model = build_model(args, len(classes), source.encoders(args))
    match_checkpoint_architecture(model, ckpt["model_config"])
    check_compatible(model_config(args, classes, model), ckpt["model_config"], args.ckpt_path)
    load_model_state(model, ckpt["model"], args.ckpt_path)
    device = resolve_device(args, dist_device)
    model, _, eval_model = prepare_model(model, device, args.channels_last, args.compile, args.compile_mode,
                                         args.cudnn_deterministic)
    stats, features = source.test(args, model, eval_model, data.test, device, Precision(args.amp, device),
                                  not args.no_progress and distributed.is_main_process(), source.modalities)
    broken = [k for k, v in stats.items() if isinstance(v, float) and not math.isfinite(v)]
    if broken:
        raise DataError(f"evaluating {args.ckpt_path} gives non-finite numbers ({', '.join(broken[:3])}): its weights "
                        "are damaged (a partly overwritten file?). Evaluate another checkpoint of the run")
    say(source.describe_test(f"{args.ckpt_path} (epoch {ckpt['epoch']}) test", stats, source.modalities))
    if args.save_features and features is not None and distributed.is_main_process():
        path = Path(args.ckpt_path).with_name(f"features_{Path(args.ckpt_path).stem}.pt")
        save_features(path, features, model, classes, source.modalities)
        say(f"test features written to {path}")
    return stats


def save_features(path: Path, features: dict, model, classes, modalities) -> None:
    """Test-set features, logits and labels, with the classifier weights (W_<tag>), for plots and probes."""
    tag = tags(modalities)
    weights = {f"W_{tag[m]}": w.detach().float().cpu() for m, w in model.classifier_weights().items()}
    save_atomic({**features, **weights, "classes": list(classes), "modalities": list(names(modalities))}, path)


def save_epoch_file(run_dir: Path, name: str, state: dict, features, model, classes, modalities) -> None:
    """last.pt or best.pt, plus the matching feature file when features are given."""
    # best.pt is for evaluation; resuming reads last.pt, so best.pt leaves out the optimizer's state
    save_atomic(state if name == "last" else {k: v for k, v in state.items() if k != "optimizer"},
                run_dir / f"{name}.pt")
    if features is not None:
        save_features(run_dir / f"features_{name}.pt", features, model, classes, modalities)


def add_param_groups(optimizer, method) -> None:
    """Parameters the method added to the model (AUG's learners) join the optimizer at its current settings."""
    for group in method.new_param_groups():
        optimizer.add_param_group(group)


def set_train_entries(sampler, method, epoch: int) -> None:
    """The epoch's training samples as the method draws them (None: every clip once, shuffled), in its order."""
    sampler.set_entries(method.train_entries(epoch), ordered=method.ordered_entries,
                        homogeneous=method.homogeneous_batches)


def train(args, source: DataSource, dist_device=None) -> dict:
    main = distributed.is_main_process()
    resume_state = load_checkpoint(Path(args.resume) / "last.pt") if args.resume else None
    if resume_state is not None:
        check_same_script(resume_state, source, args.resume)
    if resume_state is not None and resume_state["epoch"] >= args.epochs:
        say(f"{args.resume} has already run {resume_state['epoch']} of --epochs {args.epochs}: nothing to do, nothing "
            f"changed (best: {source.selection(args).describe(resume_state['best'])}); --epochs "
            f"{resume_state['epoch'] + 1} or more continues it")
        return {"run_dir": str(args.resume), "best": resume_state["best"]}
    fill_model_flags(args, resume_state, source.model_defaults)
    modalities = source.modalities
    method = build_method(args, modalities)  # checks the method's flags
    run_dir = resolve_run_dir(args, source.name)
    seed_everything(args.random_seed)
    data = source.build(args, True)
    say(*data.notes)
    if args.check_files:
        data.check_readable()
    say(*attach_caches(data, args, source.name, not args.no_progress))

    device = resolve_device(args, dist_device)
    seed_everything(args.random_seed)  # the initial weights depend on the seed alone, not on what ran before
    model = build_model(args, len(data.classes), source.encoders(args))
    try:
        method.configure_model(model)
    except ValueError as err:  # a head the method needs that these encoders cannot take (features of two sizes)
        raise DataError(f"--method {args.method}: {err}") from None
    data.train, holdout = method.split_train(data.train, args.random_seed, data.val)
    config = model_config(args, data.classes, model)
    for name, encoder in model.encoders.items():
        path = getattr(args, f"{name}_pretrain", None)  # --audio_pretrain, --rgb_pretrain, ...
        if path is not None and resume_state is None:
            # --flow_first_layer (main_UCF.py): how an ImageNet conv1 meets a non-RGB input
            say(load_encoder_weights(encoder, path, f"encoders.{name}.", getattr(args, f"{name}_first_layer", "average")))
    if resume_state is not None:
        check_compatible(config, resume_state["model_config"], Path(args.resume) / "last.pt")
        grown = resume_state["model_config"].get("head")
        if grown is not None and grown != model.head_spec:  # a head the method grew during the run (AUG's learners)
            model.set_head(grown)
        load_model_state(model, resume_state["model"], Path(args.resume) / "last.pt")
    batches = source.train_batches(args, data.train, distributed.world_size(), distributed.rank()) \
        if source.train_batches is not None else None
    if batches is not None and method.resamples_train:
        raise DataError(f"--method {args.method} resamples the training set, which this dataset's own batches "
                        "(main_Vox.py's --speaker_batches True) cannot draw: drop that flag")
    if main:  # last.pt (weights and optimizer state), best.pt (weights), and a temporary copy while one is written
        weights = state_bytes(model.state_dict())
        last = weights * (1 + optimizer_state_copies(args))
        check_free_space(run_dir, last if resume_state is not None else 2 * last + weights)
    run_lock = write_run_start(run_dir, args, data.files)  # nothing in the run directory changes before this point
    model, train_model, eval_model = prepare_model(model, device, args.channels_last, args.compile, args.compile_mode,
                                                   args.cudnn_deterministic)
    optimizer = build_optimizer(args, method.param_groups(model))
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, args.lr_decay_step, args.lr_decay_ratio)
    precision = Precision(args.amp, device)
    selection = source.selection(args)
    start_epoch, best = 1, {selection.key: None, "epoch": 0}
    partial = None  # the epoch a stop interrupted between two steps (utils/step_checkpoint.py)
    if resume_state is not None:
        optimizer.load_state_dict(resume_state["optimizer"])
        scheduler.load_state_dict(resume_state["scheduler"])
        precision.scaler.load_state_dict(resume_state.get("scaler", {}))
        method.load_state_dict(resume_state.get("method", {}))
        start_epoch, best = resume_state["epoch"] + 1, resume_state["best"]
        partial = resume_state.get("partial")
        inside = f" after step {partial['steps']} of {partial['steps_in_epoch']}" if partial is not None else ""
        say(f"resuming {run_dir} at epoch {start_epoch}{inside}")

    if batches is None:
        train_sampler = SeededSampler(data.train, args.random_seed, shuffle=True,
                                      num_replicas=distributed.world_size(), rank=distributed.rank())
        train_loader = make_loader(data.train, per_process_batch(args), train_sampler, args.num_workers,
                                   device.type == "cuda", train=True)
    else:
        train_sampler = batches
        train_loader = make_batch_loader(data.train, ResumableBatches(batches), args.num_workers, device.type == "cuda")
    method.measure = lambda dataset: evaluate(eval_model, eval_loader_for(args, dataset, device), device, modalities,
                                              precision, False, args.channels_last)[0]
    method.forward_batches = lambda dataset, indices: forward_batches(args, eval_model, dataset, indices, device,
                                                                      precision, modalities)
    method.prepare_batch = lambda batch: to_device(batch, modalities, device)
    logger = RunLogger(run_dir, args.use_tensorboard, args.tensorboard_path,
                       resume_from_epoch=start_epoch if resume_state else None) if main else None
    if logger is not None and logger.dropped:
        say(f"resuming: {logger.dropped} of metrics.jsonl removed (last.pt holds epoch {start_epoch - 1})")
    show = not args.no_progress and main
    held = f" + {len(holdout)} held out" if holdout is not None and holdout is not data.val else ""
    val = f" / {len(data.val)} validation" if data.val is not None else ""
    say(f"run directory: {run_dir}  ({len(data.train)} train{held}{val} / {len(data.test)} test clips, device {device}, "
        f"{distributed.world_size()} process(es))")
    finished = start_epoch - 1  # the last epoch whose last.pt and metrics line are written
    stop.clear()

    def checkpoint(epoch_done: int, **extra) -> dict:
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": precision.scaler.state_dict(), "method": method.state_dict(), "epoch": epoch_done,
                "best": best, "model_config": model_config(args, data.classes, model), "args": vars(args),
                "dataset": source.name, "script": source.script, **extra}

    try:
        for epoch in range(start_epoch, args.epochs + 1):
            with stop.deferred():  # a scheduler's stop from here is taken at the next step's end, or after the epoch
                train_sampler.set_epoch(epoch)
                meter, start_step, seconds_before = EpochMeter(tags(modalities)), 0, 0.0
                if partial is not None and partial["epoch"] == epoch:
                    step_checkpoint.restore(partial, meter, method, model, device, Path(args.resume) / "last.pt")
                    method_record, lrs = dict(partial["record"]), dict(partial["lrs"])
                    start_step, seconds_before = partial["steps"], partial["seconds"]
                    set_train_entries(train_sampler, method, epoch)
                    train_loader.batch_sampler.skip = start_step
                    step_checkpoint.restore_generators(partial, device)
                else:
                    torch.manual_seed(epoch_seed(args.random_seed, epoch))
                    method_record = method.start_epoch(epoch, model, optimizer) or {}
                    add_param_groups(optimizer, method)
                    set_train_entries(train_sampler, method, epoch)
                    lrs = {f"lr_{g['name']}" if "name" in g else "lr": g["lr"] for g in optimizer.param_groups}
                started = time.perf_counter()
                try:
                    train_stats = train_one_epoch(train_model, train_loader, optimizer, precision, device, epoch,
                                                  method, model, modalities, show, args.channels_last, start_step, meter)
                except StoppedAtStep as stopped:
                    seconds = seconds_before + time.perf_counter() - started
                    kept = step_checkpoint.capture(epoch, stopped.steps, stopped.steps_in_epoch, meter, method, device,
                                                   method_record, lrs, seconds)
                    if main:
                        save_epoch_file(run_dir, "last", checkpoint(epoch - 1, partial=kept), None, model,
                                        data.classes, modalities)
                    raise Interrupted(f"terminated ({stop.signal_name()}) in epoch {epoch} after step {stopped.steps} "
                                      f"of {stopped.steps_in_epoch}; last.pt holds the epoch so far: continue with "
                                      f"--resume {run_dir}", exit_code=143) from None
                train_stats["seconds"] = seconds_before + time.perf_counter() - started
                method_record.update(method.end_epoch(epoch, model) or {})
                add_param_groups(optimizer, method)
                scheduler.step()
                val_stats = {}
                if data.val is not None:
                    started = time.perf_counter()
                    val_stats, _ = source.test(args, model, eval_model, data.val, device, precision, show, modalities)
                    val_stats["seconds"] = time.perf_counter() - started
                started = time.perf_counter()
                test_stats, features = source.test(args, model, eval_model, data.test, device, precision, show,
                                                   modalities)
                test_stats["seconds"] = time.perf_counter() - started
                selecting, split = (val_stats, "val") if data.val is not None else (test_stats, "test")
                if selection.improves(selecting[selection.key], best):
                    best = selection.record(epoch, selecting, test_stats, split)
                if main:
                    state = checkpoint(epoch)
                    record = {**lrs, **method_record, **{f"train_{k}": v for k, v in train_stats.items()},
                              **{f"val_{k}": v for k, v in val_stats.items()},
                              **{f"test_{k}": v for k, v in test_stats.items()},
                              **classifier_weight_norms(model, tags(modalities)),
                              **{f"best_{k}": v for k, v in best.items()}}
                    # The epoch's line first, then last.pt: a stop between the two leaves a line that resuming from
                    # the previous last.pt drops and writes again (the other order would lose the line for good).
                    logger.log_epoch(epoch, record)
                    kept = features if args.save_features else None
                    save_epoch_file(run_dir, "last", state, kept, model, data.classes, modalities)
                    finished = epoch  # from here a stop leaves last.pt of this epoch to resume from
                    if best["epoch"] == epoch:
                        save_epoch_file(run_dir, "best", state, kept, model, data.classes, modalities)
                finished = epoch
                val_text = f"{source.describe_test('val', val_stats, modalities)} | " if val_stats else ""
                say(f"epoch {epoch}/{args.epochs}  {format_stats('train', train_stats, modalities)} | {val_text}"
                    f"{source.describe_test('test', test_stats, modalities)} | best {selection.describe(best)}")
                if epoch < args.epochs and stop.requested():
                    raise Interrupted(f"terminated ({stop.signal_name()}) after epoch {epoch}; last.pt holds it: "
                                      f"continue with --resume {run_dir}", exit_code=143)
    except FloatingPointError as err:
        kept = f"the last good checkpoint is {run_dir / 'last.pt'} (epoch {finished})" if finished else \
            "no checkpoint was written (it diverged in the first epoch)"
        raise FloatingPointError(f"{err}; {kept}") from None
    except KeyboardInterrupt as err:
        # `finished`, not `epoch`: a signal between an epoch's files and the next epoch's start finds them written
        kept = f"last.pt holds epoch {finished}: continue with --resume {run_dir}" if finished else \
            "no epoch had finished, so there is nothing to resume"
        what, code = (f"terminated ({err.signal_name})", 143) if isinstance(err, Terminated) else ("interrupted", 130)
        raise Interrupted(f"{what} in epoch {finished + 1}; {kept}", exit_code=code) from None
    finally:
        if logger is not None:
            logger.close()
        if run_lock is not None:
            os.close(run_lock)
    distributed.barrier()
    return {"run_dir": str(run_dir), "best": best}
