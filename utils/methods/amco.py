"""AMCo, Adaptive Mask Co-optimization (Zhou et al., ICASSP 2023), as BalanceBenchmark's AMCo_trainer and
BaseClassifier_AMCoModel have it (no authors' code is public), for two modalities as for its three.

The fused prediction is a C x C linear layer L* on the sum of the modalities' logits (the fused-head
slices, or the cosine logits under MMCosine), at training and at test time. Per step in the window, a
modality is "dependent" when, in a softmax over the M C concatenated logits [z_1, ..., z_M], its block
holds more than sigma of the mass on average over the batch (decided on the previous step, over the
global batch; no modality at an epoch's start). A dependent modality's logits are multiplied by a random
class mask with floor(p_t C) zeros, the same for the whole batch (and for every dependent modality),
before the sum, where

    p_t = sin(pi/2 * min(eps, l_t) / eps),   l_t = 0 at the epoch's start, + epoch / 10 after each step

(epoch 0-based: no mask in the first epoch; afterwards p_t reaches 1 within a few steps). The loss is
CE(L*(sum_m z_m')) + sum_m CE(z_m'), z' the masked logits; outside the window CE(L*(sum_m z_m)).

BalanceBenchmark's model recomputes the uni-modal logits only when no modality is dependent (its
`if True not in dependent_modality.values()`), so from the second step of the window on its loss reads
the previous step's logits; here they are masked and recomputed every step, as its trainer describes.
"""
import math

import torch
import torch.nn.functional as F

from .. import distributed
from ..flag_types import FRACTION, POSITIVE
from ..seed import sample_seed
from .base import Method


def mask_ratio(progress: float, eps: float) -> float:
    return math.sin(math.pi / 2 * min(eps, progress) / eps)


def class_mask(n_classes: int, n_zeros: int, generator: torch.Generator) -> torch.Tensor:
    mask = torch.ones(n_classes)
    mask[torch.randperm(n_classes, generator=generator)[:n_zeros]] = 0
    return mask


def block_masses(*logits: torch.Tensor):
    """Mean over the global batch of each modality's share of a softmax over [z_1, ..., z_M] (given in order)."""
    with torch.no_grad():
        p = F.softmax(torch.cat(logits, 1).float(), 1)
        n = logits[0].shape[1]
        sums = torch.stack([p[:, i * n:(i + 1) * n].sum() for i in range(len(logits))]
                           + [torch.tensor(float(len(p)), device=p.device)])
        sums = distributed.all_reduce_sum(sums.double())
        return [(sums[i] / sums[-1]).item() for i in range(len(logits))]


class AMCo(Method):
    name = "amco"
    default_window_end = 80  # BalanceBenchmark's trainer_config

    @classmethod
    def add_args(cls, group, modalities):
        group.add_argument("--amco_sigma", type=FRACTION, default=0.5,
                           help="AMCo: share of the softmax mass above which a modality is dependent (BB's 0.5)")
        group.add_argument("--amco_eps", type=POSITIVE, default=0.3,
                           help="AMCo: progress at which the mask ratio reaches 1 (BB's 0.3)")

    def __init__(self, args, *context):
        super().__init__(args, *context)
        self.progress, self.dependent = 0.0, {m: False for m in self.modalities}

    def configure_model(self, model):
        model.set_head({"combine": {"name": "class_mixing"}})

    def start_epoch(self, epoch, model, optimizer):
        self.progress, self.dependent = 0.0, {m: False for m in self.modalities}
        return {}

    def train_step(self, step):
        if not self.active(step.epoch):
            return super().train_step(step)
        combiner = step.raw_model.combiner
        ratio = mask_ratio(self.progress, self.args.amco_eps)
        n_classes = step.raw_model.n_classes
        # Drawn alike on every process, and again alike on resume: seeded by the step.
        generator = torch.Generator().manual_seed(sample_seed(self.args.random_seed, step.epoch, step.index))
        mask = class_mask(n_classes, int(ratio * n_classes), generator).to(step.labels.device)
        combiner.masks = {m: mask if self.dependent[m] else None for m in self.modalities}
        self.progress += (step.epoch - 1) / 10
        try:
            out, logged = super().train_step(step)
        finally:
            combiner.masks = None
        masses = dict(zip(self.modalities, block_masses(*(out.unimodal[m] for m in self.modalities))))
        logged = {**logged, "amco_mask_ratio": ratio,
                  **{f"amco_masked_{m}": float(self.dependent[m]) for m in self.modalities},
                  # the masses sum to 1: the last modality's is left out
                  **{f"amco_mass_{m}": masses[m] for m in self.modalities[:-1]}}
        self.dependent = {m: masses[m] > self.args.amco_sigma for m in self.modalities}
        return out, logged

    def loss(self, out, labels, epoch):
        loss = F.cross_entropy(out.logits.float(), labels)
        if self.active(epoch):
            for m in self.modalities:
                loss = loss + F.cross_entropy(out.unimodal[m].float(), labels)
        return loss
