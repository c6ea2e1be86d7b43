"""Each modality's contribution to the fused prediction, as BalanceBenchmark reports it: the accuracy with every
subset of the modalities kept and the others' encoder features zeroed, and from those numbers the Shapley
value of each modality (its mean marginal gain in accuracy over the orders in which modalities can join).

Keys (percent): acc_keep_<tags joined by "+"> for each proper subset kept (acc_keep_none: every modality zeroed;
all kept is `acc`), and shapley_<tag>; the Shapley values sum to acc - acc_keep_none."""
from itertools import combinations
from math import factorial
from typing import Dict, Tuple

import torch

from . import distributed


def subset_key(kept: Tuple[str, ...], tags: Dict[str, str]) -> str:
    return "acc_keep_" + ("+".join(tags[m] for m in kept) if kept else "none")


def shapley_values(accuracy: Dict[Tuple[str, ...], float], names: Tuple[str, ...]) -> Dict[str, float]:
    """phi_m = sum over S not holding m of |S|! (M - |S| - 1)! / M! * (v(S + m) - v(S)); `accuracy` maps each
    subset (a tuple in `names` order) to v."""
    n = len(names)
    values = {}
    for m in names:
        others = [x for x in names if x != m]
        phi = 0.0
        for size in range(n):
            weight = factorial(size) * factorial(n - size - 1) / factorial(n)
            for subset in combinations(others, size):
                with_m = tuple(x for x in names if x in subset or x == m)
                phi += weight * (accuracy[with_m] - accuracy[subset])
        values[m] = phi
    return values


class SubsetAccuracy:
    """Counts, batch by batch, the correct fused predictions with each proper subset of modalities kept (the
    head run again on the batch's encoder features, the others zeroed); `result()` reduces over processes."""

    def __init__(self, model, tags: Dict[str, str]):
        self.model, self.tags = model, tags
        self.names = tuple(tags)
        self.subsets = [s for size in range(len(self.names)) for s in combinations(self.names, size)]
        self.correct = None  # per subset, then all kept, then the count; on the model's device (NCCL reduces it)

    def update(self, out, labels: torch.Tensor) -> None:
        counts = []
        for kept in self.subsets:
            enc = {m: x if m in kept else torch.zeros_like(x) for m, x in out.enc.items()}
            counts.append((self.model.head(enc).logits.argmax(1) == labels).sum())
        counts += [(out.logits.argmax(1) == labels).sum(), torch.tensor(labels.numel(), device=labels.device)]
        counts = torch.stack([c.double() for c in counts])
        self.correct = counts if self.correct is None else self.correct + counts

    def result(self) -> Dict[str, float]:
        totals = distributed.all_reduce_sum(self.correct.clone()).cpu()
        count = max(totals[-1].item(), 1.0)
        accuracy = {kept: 100.0 * totals[i].item() / count for i, kept in enumerate(self.subsets)}
        accuracy[self.names] = 100.0 * totals[len(self.subsets)].item() / count
        stats = {subset_key(kept, self.tags): accuracy[kept] for kept in self.subsets}
        stats.update({f"shapley_{self.tags[m]}": v for m, v in shapley_values(accuracy, self.names).items()})
        return stats
