"""Per-batch confidence scores several methods compare between the modalities, taken over the
global batch (summed over processes) so that every process makes the same decision."""
from typing import List

import torch

from .. import distributed


def true_class_scores(labels: torch.Tensor, *logits: torch.Tensor) -> List[float]:
    """For each logits tensor: sum over the batch of softmax(logits)[true class] (OGM's s_m)."""
    with torch.no_grad():
        scores = torch.stack([lg.float().softmax(1).gather(1, labels[:, None]).sum() for lg in logits])
        return distributed.all_reduce_sum(scores).tolist()


def global_mean(values: torch.Tensor) -> float:
    """Mean over the global batch of one number per sample."""
    with torch.no_grad():
        total = distributed.all_reduce_sum(torch.stack([values.detach().double().sum(),
                                                        torch.tensor(float(values.numel()), dtype=torch.float64,
                                                                     device=values.device)]))
        return (total[0] / total[1]).item()


def local_rows(global_rows: torch.Tensor) -> torch.Tensor:
    """This process's rows of a tensor drawn for the global batch: the sampler deals the global batch
    out round-robin, so process r holds its rows r, r + N, r + 2N, ..."""
    return global_rows[distributed.rank()::distributed.world_size()]


def global_batch_mean(batch_mean: torch.Tensor, batch_size: int) -> float:
    """A per-batch mean (e.g. a loss) over the global batch, for a log that is the same on every process."""
    with torch.no_grad():
        total = distributed.all_reduce_sum(torch.stack([batch_mean.detach().double() * batch_size,
                                                        torch.tensor(float(batch_size), dtype=torch.float64,
                                                                     device=batch_mean.device)]))
        return (total[0] / total[1]).item()
