"""The training loop as it was before methods could own their step (commit 12c41f6, verbatim but
for the progress bar): tests/test_method_steps.py checks that the present loop trains every method
that existed then bit for bit as this one did."""
import math

from utils.engine import to_device
from utils.metrics import EpochMeter


def legacy_train_one_epoch(model, loader, optimizer, precision, device, epoch, method, raw_model):
    model.train()
    meter = EpochMeter()
    for step, batch in enumerate(loader):
        audio, visual, labels = to_device(batch, device)
        with precision.autocast():
            out = model(audio, visual)
        loss = method.loss(out, labels, epoch)
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            raise FloatingPointError(f"non-finite loss ({loss_value}) at epoch {epoch}, step {step}")
        extras = precision.backward_step(loss, optimizer, lambda: method.before_step(raw_model, out, labels, epoch))
        meter.update(out, labels, extras)
    return meter.result()
