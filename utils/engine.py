"""One training epoch and one evaluation pass. Both return a dict of per-sample statistics,
reduced over all processes when running distributed; evaluation also returns the features."""
from contextlib import nullcontext
from typing import Dict, Tuple

import torch
from tqdm import tqdm

from dataset.visual import frames_to_model_input

from .methods.step import Step
from .metrics import EpochMeter


def to_device(batch, device, channels_last: bool = False):
    audio, visual, labels = batch
    nb = device.type == "cuda"
    audio, visual, labels = (t.to(device, non_blocking=nb) for t in (audio, visual, labels))
    audio = audio.float()  # the cache stores float16 spectrograms
    if visual.dtype == torch.uint8:
        visual = frames_to_model_input(visual)
    if channels_last:
        # (B,3,T,H,W) stored as (B,T,H,W,3): the encoder's fold to (B*T,3,H,W) is then channels-last for free.
        if audio.dim() == 4:  # spectrograms; raw waveforms (B, N) have no layout to choose
            audio = audio.contiguous(memory_format=torch.channels_last)
        visual = visual.contiguous(memory_format=torch.channels_last_3d)
    return audio, visual, labels


def train_one_epoch(model, loader, optimizer, precision, device, epoch: int, method, raw_model,
                    show_progress: bool = True, channels_last: bool = False) -> Dict[str, float]:
    """Each batch is one `method.train_step`; `raw_model` is the unwrapped model whose parameters the
    method may touch."""
    model.train()
    meter = EpochMeter()
    bar = tqdm(loader, desc=f"train {epoch}", leave=False, dynamic_ncols=True, disable=not show_progress)
    for index, batch in enumerate(bar):
        audio, visual, labels = to_device(batch[:3], device, channels_last)
        flags = batch[3].to(device) if len(batch) > 3 else None  # a resampling method's per-sample flags
        step = Step(model, raw_model, optimizer, precision, audio, visual, labels, epoch, index, len(loader), flags)
        out, extras = method.train_step(step)
        meter.update(out, labels, extras)
        if step.loss_value is not None:
            bar.set_postfix(loss=f"{step.loss_value:.3f}")
    return meter.result()


@torch.no_grad()
def evaluate(model, loader, device, precision=None, show_progress: bool = True, channels_last: bool = False,
             weights=None) -> Tuple[Dict[str, float], Dict[str, torch.Tensor]]:
    """Statistics over the loader's set (with `weights` (W_a, W_v): angle statistics too), and its features."""
    model.eval()
    meter = EpochMeter(keep_features=True)
    for batch in tqdm(loader, desc="eval", leave=False, dynamic_ncols=True, disable=not show_progress):
        audio, visual, labels = to_device(batch, device, channels_last)
        with precision.autocast() if precision is not None else nullcontext():
            out = model(audio, visual)
        meter.update(out, labels)
    stats = meter.result(weights)
    return stats, meter.last_features
