"""The MMCosine head: per-modality scaled cosine logits, summed."""
import torch
import torch.nn.functional as F


def cosine_logits(feat: torch.Tensor, weight: torch.Tensor, scaling: float) -> torch.Tensor:
    """s * cos(f, W[k]) for every class k; features and class rows L2-normalised, no bias."""
    return scaling * F.normalize(feat, dim=1) @ F.normalize(weight, dim=1).t()
