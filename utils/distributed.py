"""DistributedDataParallel from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK).

Without those variables everything runs in one process, no launcher needed. --batch_size
is the global batch: each of the N processes takes batch_size / N samples, and BatchNorm
statistics are synchronised across processes, so N processes train like one.
"""
import os
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
from torch import nn


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    return rank() == 0


def init_from_env(device_flag: str = "auto"):
    """Join the process group if torchrun started us; returns the local device (or None to choose normally)."""
    if "RANK" not in os.environ or is_distributed():
        return None
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    use_cuda = torch.cuda.is_available() and device_flag in ("auto", "cuda")
    if use_cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend="nccl" if use_cuda else "gloo", timeout=timedelta(minutes=30))
    return torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


class GlooSyncBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose batch statistics are summed over all processes, for CPU (torch's
    SyncBatchNorm only runs on GPUs). The differentiable all_reduce carries the gradient of
    the shared statistics back to every process, as SyncBatchNorm does."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and is_distributed()):
            return super().forward(x)
        c = self.num_features
        count = torch.tensor([x.numel() / c], dtype=x.dtype)
        totals = dist_fn.all_reduce(torch.cat([x.sum(dim=(0, 2, 3)), count]))
        n = totals[-1]
        mean = totals[:c] / n
        centred = x - mean[None, :, None, None]
        # Two passes (mean, then squared deviations), as BatchNorm does, to avoid E[x^2] - E[x]^2 cancellation.
        var = dist_fn.all_reduce((centred * centred).sum(dim=(0, 2, 3))) / n
        with torch.no_grad():
            m = self.momentum
            self.running_mean.mul_(1 - m).add_(m * mean.detach())
            self.running_var.mul_(1 - m).add_(m * var.detach() * n / (n - 1))
            self.num_batches_tracked.add_(1)
        scale = self.weight / torch.sqrt(var + self.eps)
        return centred * scale[None, :, None, None] + self.bias[None, :, None, None]


def sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return _swap_bn(model)


def _swap_bn(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.BatchNorm2d) and not isinstance(module, GlooSyncBatchNorm):
        swapped = GlooSyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine)
        swapped.load_state_dict(module.state_dict())
        return swapped
    for name, child in module.named_children():
        setattr(module, name, _swap_bn(child))
    return module


def cleanup() -> None:
    if is_distributed():
        dist.destroy_process_group()
