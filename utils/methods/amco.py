"""AMCo, Adaptive Mask Co-optimization (Zhou et al., ICASSP 2023), as BalanceBenchmark's AMCo_trainer and
BaseClassifier_AMCoModel have it (no authors' code is public).

The fused prediction is a C x C linear layer L* on the sum of the two modalities' logits (the
fused-head slices, or the cosine logits under MMCosine), at training and at test time. Per step in
the window, a modality is "dependent" when, in a softmax over the 2C concatenated logits [z_a, z_v],
its block holds more than sigma of the mass on average over the batch (decided on the previous step,
over the global batch; no modality at an epoch's start). A dependent modality's logits are multiplied
by a random class mask with floor(p_t C) zeros, the same for the whole batch, before the sum, where

    p_t = sin(pi/2 * min(eps, l_t) / eps),   l_t = 0 at the epoch's start, + epoch / 10 after each step

(epoch 0-based: no mask in the first epoch; afterwards p_t reaches 1 within a few steps). The loss is
CE(L*(z_a' + z_v')) + CE(z_a') + CE(z_v'), z' the masked logits; outside the window CE(L*(z_a + z_v)).

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

MODALITIES = ("audio", "visual")


def mask_ratio(progress: float, eps: float) -> float:
    return math.sin(math.pi / 2 * min(eps, progress) / eps)


def class_mask(n_classes: int, n_zeros: int, generator: torch.Generator) -> torch.Tensor:
    mask = torch.ones(n_classes)
    mask[torch.randperm(n_classes, generator=generator)[:n_zeros]] = 0
    return mask


def block_masses(logits_a: torch.Tensor, logits_v: torch.Tensor):
    """Mean over the global batch of each modality's share of a softmax over [z_a, z_v]."""
    with torch.no_grad():
        p = F.softmax(torch.cat([logits_a, logits_v], 1).float(), 1)
        n = logits_a.shape[1]
        sums = torch.stack([p[:, :n].sum(), p[:, n:].sum(), torch.tensor(float(len(p)), device=p.device)])
        sums = distributed.all_reduce_sum(sums.double())
        return (sums[0] / sums[2]).item(), (sums[1] / sums[2]).item()


class AMCo(Method):
    name = "amco"
    default_window_end = 80  # BalanceBenchmark's trainer_config

    @classmethod
    def add_args(cls, group):
        group.add_argument("--amco_sigma", type=FRACTION, default=0.5,
                           help="AMCo: share of the softmax mass above which a modality is dependent (BB's 0.5)")
        group.add_argument("--amco_eps", type=POSITIVE, default=0.3,
                           help="AMCo: progress at which the mask ratio reaches 1 (BB's 0.3)")

    def __init__(self, args):
        super().__init__(args)
        self.progress, self.dependent = 0.0, {m: False for m in MODALITIES}

    def configure_model(self, model):
        model.set_head({"combine": {"name": "class_mixing"}})

    def start_epoch(self, epoch, model, optimizer):
        self.progress, self.dependent = 0.0, {m: False for m in MODALITIES}
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
        combiner.masks = tuple(mask if self.dependent[m] else None for m in MODALITIES)
        self.progress += (step.epoch - 1) / 10
        try:
            out, logged = super().train_step(step)
        finally:
            combiner.masks = None
        mass_a, mass_v = block_masses(out.logits_a, out.logits_v)
        logged = {**logged, "amco_mask_ratio": ratio, "amco_masked_audio": float(self.dependent["audio"]),
                  "amco_masked_visual": float(self.dependent["visual"]), "amco_mass_audio": mass_a}
        self.dependent = {"audio": mass_a > self.args.amco_sigma, "visual": mass_v > self.args.amco_sigma}
        return out, logged

    def loss(self, out, labels, epoch):
        loss = F.cross_entropy(out.logits.float(), labels)
        if self.active(epoch):
            loss = loss + F.cross_entropy(out.logits_a.float(), labels) + F.cross_entropy(out.logits_v.float(), labels)
        return loss
