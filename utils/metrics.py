"""Per-epoch averages of the fused and uni-modal predictions.

Sums are kept per batch and divided once at the end, so the averages are exact over
the samples seen (and can be summed across processes before dividing).
"""
from typing import Dict

import torch
import torch.nn.functional as F

# What is averaged over samples; order fixes the layout of the sum vector.
SAMPLE_KEYS = ("loss", "loss_a", "loss_v", "acc", "acc_a", "acc_v", "gt_logit_a", "gt_logit_v")


def batch_sums(out, labels: torch.Tensor) -> torch.Tensor:
    """Sums over the batch of every SAMPLE_KEYS quantity, as one float64 vector (on the model's device)."""
    with torch.no_grad():
        logits, logits_a, logits_v = out.logits.float(), out.logits_a.float(), out.logits_v.float()
        per_key = [
            F.cross_entropy(logits, labels, reduction="sum"),
            F.cross_entropy(logits_a, labels, reduction="sum"),
            F.cross_entropy(logits_v, labels, reduction="sum"),
            (logits.argmax(1) == labels).sum(),
            (logits_a.argmax(1) == labels).sum(),
            (logits_v.argmax(1) == labels).sum(),
            logits_a.gather(1, labels[:, None]).sum(),
            logits_v.gather(1, labels[:, None]).sum(),
        ]
        return torch.stack([x.double() for x in per_key])


def averages(sums: torch.Tensor, count: int) -> Dict[str, float]:
    """Turn summed quantities into means; accuracies in percent."""
    values = (sums / max(count, 1)).tolist()
    stats = dict(zip(SAMPLE_KEYS, values))
    for key in ("acc", "acc_a", "acc_v"):
        stats[key] *= 100.0
    stats["count"] = count
    return stats


def classifier_weight_norms(model) -> Dict[str, float]:
    """Mean L2 norm of the class rows of each modality's classifier weights."""
    w_a, w_v = model.classifier_weights()
    return {"weight_norm_a": w_a.detach().norm(dim=1).mean().item(),
            "weight_norm_v": w_v.detach().norm(dim=1).mean().item()}
