"""One training epoch and one evaluation pass. Both return a dict of per-sample statistics,
reduced over all processes when running distributed; evaluation also returns the features.
Batches are (x_1, ..., x_M, labels[, flags]) in the dataset's modalities' order."""
from contextlib import nullcontext
from typing import Dict, Optional, Sequence, Tuple

import torch
from tqdm import tqdm

from dataset.modalities import tags

from . import stop
from .contributions import SubsetAccuracy
from .methods.step import Step
from .metrics import EpochMeter


def to_device(batch, modalities: Sequence, device, channels_last: bool = False):
    """({name: model input on the device}, labels) from a batch's first M + 1 tensors."""
    nb = device.type == "cuda"
    inputs = {}
    for modality, tensor in zip(modalities, batch):
        x = modality.prepare(tensor.to(device, non_blocking=nb))
        if channels_last:
            # (B,3,T,H,W) stored as (B,T,H,W,3): the encoder's fold to (B*T,3,H,W) is then channels-last for free;
            # raw waveforms (B, N) and feature sequences have no layout to choose.
            if x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            elif x.dim() == 5:
                x = x.contiguous(memory_format=torch.channels_last_3d)
        inputs[modality.name] = x
    labels = batch[len(modalities)].to(device, non_blocking=nb)
    return inputs, labels


class StoppedAtStep(Exception):
    """A stop was asked for (utils/stop.py) and the epoch's first `steps` steps are done (their sums are in the
    meter the caller passed)."""

    def __init__(self, steps: int, steps_in_epoch: int):
        super().__init__(f"stopped after step {steps} of {steps_in_epoch}")
        self.steps, self.steps_in_epoch = steps, steps_in_epoch


def train_one_epoch(model, loader, optimizer, precision, device, epoch: int, method, raw_model, modalities,
                    show_progress: bool = True, channels_last: bool = False, start_step: int = 0,
                    meter: Optional[EpochMeter] = None) -> Dict[str, float]:
    """Each batch is one `method.train_step`; `raw_model` is the unwrapped model whose parameters the
    method may touch. A run resumed inside the epoch passes the steps done (`start_step`: the loader leaves
    them out) and their `meter`. After each step a requested stop raises StoppedAtStep, the sums so far in `meter`."""
    model.train()
    meter = meter if meter is not None else EpochMeter(tags(modalities))
    n = len(modalities)
    steps_in_epoch = start_step + len(loader)
    bar = tqdm(loader, desc=f"train {epoch}", leave=False, dynamic_ncols=True, disable=not show_progress)
    for index, batch in enumerate(bar, start=start_step):
        inputs, labels = to_device(batch[:n + 1], modalities, device, channels_last)
        flags = batch[n + 1].to(device) if len(batch) > n + 1 else None  # a resampling method's per-sample flags
        step = Step(model, raw_model, optimizer, precision, inputs, labels, epoch, index, steps_in_epoch, flags)
        out, extras = method.train_step(step)
        meter.update(out, labels, extras)
        if step.loss_value is not None:
            bar.set_postfix(loss=f"{step.loss_value:.3f}")
        if stop.requested():
            raise StoppedAtStep(index + 1, steps_in_epoch)
    return meter.result()


@torch.no_grad()
def evaluate(model, loader, device, modalities, precision=None, show_progress: bool = True,
             channels_last: bool = False, weights=None,
             contributions: bool = False) -> Tuple[Dict[str, float], Dict[str, torch.Tensor]]:
    """Statistics over the loader's set (with `weights` {name: W_m}: angle statistics too), and its features.
    `contributions`: also each modality's contribution, from the accuracy with every subset of modalities'
    encoder features zeroed (utils/contributions.py)."""
    model.eval()
    meter = EpochMeter(tags(modalities), keep_features=True)
    subsets = SubsetAccuracy(getattr(model, "_orig_mod", model), tags(modalities)) if contributions else None
    for batch in tqdm(loader, desc="eval", leave=False, dynamic_ncols=True, disable=not show_progress):
        inputs, labels = to_device(batch, modalities, device, channels_last)
        with precision.autocast() if precision is not None else nullcontext():
            out = model(inputs)
            if subsets is not None:
                subsets.update(out, labels)
        meter.update(out, labels)
    stats = meter.result(weights)
    if subsets is not None:
        stats.update(subsets.result())
    return stats, meter.last_features
