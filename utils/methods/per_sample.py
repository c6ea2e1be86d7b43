"""Per-sample numbers from an eval-mode pass over a dataset, complete on every process: each process
computes the rows of its share of the samples (Method.forward_batches deals them out round-robin), the
others' rows stay zero, and one all-reduce sum fills in the table."""
from typing import Callable, Sequence

import torch

from .. import distributed
from ..seed import sample_seed


def training_pass_keys(seed: int, epoch: int, indices: Sequence[int]):
    """Keys of an eval-mode pass over training clips before `epoch`: augmented as for training, with draws
    of their own (epoch -epoch), so the pass depends on (seed, epoch) alone and never repeats training's."""
    return [(i, sample_seed(seed, -epoch, i)) for i in indices]


def per_sample_rows(forward_batches, dataset, keys: Sequence, rows: Callable, width: int,
                    device: torch.device) -> torch.Tensor:
    """(len(keys), width) float64 on the CPU; rows(out, labels) -> (B, width) for each batch, in key order.
    `device` is where the processes reduce (the model's device)."""
    mine = list(range(len(keys)))[distributed.rank()::distributed.world_size()]
    table = torch.zeros(len(keys), width, dtype=torch.float64, device=device)
    filled = 0
    for out, labels in forward_batches(dataset, keys):
        with torch.no_grad():
            block = rows(out, labels).double()
        table[mine[filled:filled + len(block)]] = block.to(device)
        filled += len(block)
    return distributed.all_reduce_sum(table).cpu()
