"""One training epoch and one evaluation pass. Both return a dict of per-sample averages."""
import math
from typing import Dict

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .metrics import averages, batch_sums


def _to_device(batch, device):
    audio, visual, labels = batch
    nb = device.type == "cuda"
    return audio.to(device, non_blocking=nb), visual.to(device, non_blocking=nb), labels.to(device, non_blocking=nb)


def train_one_epoch(model, loader, optimizer, device, epoch: int, show_progress: bool = True) -> Dict[str, float]:
    model.train()
    sums, count = None, 0
    bar = tqdm(loader, desc=f"train {epoch}", leave=False, dynamic_ncols=True, disable=not show_progress)
    for step, batch in enumerate(bar):
        audio, visual, labels = _to_device(batch, device)
        out = model(audio, visual)
        loss = F.cross_entropy(out.logits, labels)
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            raise FloatingPointError(f"non-finite loss ({loss_value}) at epoch {epoch}, step {step}: "
                                     "lower --learning_rate (or --scaling); the last good checkpoint is last.pt")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        batch_sum = batch_sums(out, labels)
        sums = batch_sum if sums is None else sums + batch_sum
        count += labels.numel()
        bar.set_postfix(loss=f"{loss_value:.3f}")
    return averages(sums, count)


@torch.no_grad()
def evaluate(model, loader, device, show_progress: bool = True) -> Dict[str, float]:
    model.eval()
    sums, count = None, 0
    for batch in tqdm(loader, desc="eval", leave=False, dynamic_ncols=True, disable=not show_progress):
        audio, visual, labels = _to_device(batch, device)
        batch_sum = batch_sums(model(audio, visual), labels)
        sums = batch_sum if sums is None else sums + batch_sum
        count += labels.numel()
    return averages(sums, count)
