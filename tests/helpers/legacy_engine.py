"""The training loop as it was before methods could own their step (commit 12c41f6, but for the progress bar
and the modality-keyed batches of issue 21): tests/test_method_steps.py checks that the present loop trains
every method that existed then bit for bit as this one did."""
import math

from dataset.modalities import tags
from utils.engine import to_device
from utils.metrics import EpochMeter


def legacy_train_one_epoch(model, loader, optimizer, precision, device, epoch, method, raw_model, modalities):
    model.train()
    meter = EpochMeter(tags(modalities))
    for step, batch in enumerate(loader):
        inputs, labels = to_device(batch, modalities, device)
        with precision.autocast():
            out = model(inputs)
        loss = method.loss(out, labels, epoch)
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            raise FloatingPointError(f"non-finite loss ({loss_value}) at epoch {epoch}, step {step}")
        extras = precision.backward_step(loss, optimizer, lambda: method.before_step(raw_model, out, labels, epoch))
        meter.update(out, labels, extras)
    return meter.result()
