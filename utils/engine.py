"""One training epoch and one evaluation pass. Both return a dict of per-sample averages,
reduced over all processes when running distributed."""
import math
from typing import Dict

import torch
import torch.nn.functional as F
from tqdm import tqdm

from dataset.visual import frames_to_model_input

from .distributed import all_reduce_sum
from .metrics import averages, batch_sums


def to_device(batch, device, channels_last: bool = False):
    audio, visual, labels = batch
    nb = device.type == "cuda"
    audio, visual, labels = (t.to(device, non_blocking=nb) for t in (audio, visual, labels))
    audio = audio.float()  # the cache stores float16 spectrograms
    if visual.dtype == torch.uint8:
        visual = frames_to_model_input(visual)
    if channels_last:
        # (B,3,T,H,W) stored as (B,T,H,W,3): the encoder's fold to (B*T,3,H,W) is then channels-last for free.
        audio = audio.contiguous(memory_format=torch.channels_last)
        visual = visual.contiguous(memory_format=torch.channels_last_3d)
    return audio, visual, labels


def _reduced_averages(sums, count, device) -> Dict[str, float]:
    packed = torch.cat([sums, torch.tensor([float(count)], dtype=sums.dtype, device=sums.device)])
    packed = all_reduce_sum(packed)
    return averages(packed[:-1].cpu(), int(packed[-1].item()))


def train_one_epoch(model, loader, optimizer, precision, device, epoch: int, show_progress: bool = True,
                    channels_last: bool = False) -> Dict[str, float]:
    model.train()
    sums, count = torch.zeros(8, dtype=torch.float64, device=device), 0
    bar = tqdm(loader, desc=f"train {epoch}", leave=False, dynamic_ncols=True, disable=not show_progress)
    for step, batch in enumerate(bar):
        audio, visual, labels = to_device(batch, device, channels_last)
        with precision.autocast():
            out = model(audio, visual)
        loss = F.cross_entropy(out.logits.float(), labels)
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            raise FloatingPointError(f"non-finite loss ({loss_value}) at epoch {epoch}, step {step}: "
                                     "lower --learning_rate (or --scaling); the last good checkpoint is last.pt")
        precision.backward_step(loss, optimizer)
        sums += batch_sums(out, labels)
        count += labels.numel()
        bar.set_postfix(loss=f"{loss_value:.3f}")
    return _reduced_averages(sums, count, device)


@torch.no_grad()
def evaluate(model, loader, device, precision=None, show_progress: bool = True,
             channels_last: bool = False) -> Dict[str, float]:
    model.eval()
    sums, count = torch.zeros(8, dtype=torch.float64, device=device), 0
    for batch in tqdm(loader, desc="eval", leave=False, dynamic_ncols=True, disable=not show_progress):
        audio, visual, labels = to_device(batch, device, channels_last)
        if precision is not None:
            with precision.autocast():
                out = model(audio, visual)
        else:
            out = model(audio, visual)
        sums += batch_sums(out, labels)
        count += labels.numel()
    return _reduced_averages(sums, count, device)
