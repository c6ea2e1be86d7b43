"""The MMCosine head: per-modality scaled cosine logits, summed."""
import torch
import torch.nn.functional as F


def cosine_logits(feat: torch.Tensor, weight: torch.Tensor, scaling: float) -> torch.Tensor:
    """s * cos(f, W[k]) for every class k; features and class rows L2-normalised, no bias.
    Always in float32: under bf16/fp16 autocast the cosine would lose ~1e-2, times s."""
    dtype = torch.promote_types(feat.dtype, torch.float32)  # never below float32, never down from float64
    with torch.autocast(device_type=feat.device.type, enabled=False):
        return scaling * F.normalize(feat.to(dtype), dim=1) @ F.normalize(weight.to(dtype), dim=1).t()
