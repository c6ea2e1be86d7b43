"""ARL, Asymmetric Representation Learning (Wei, Luo, Luo, "Improving Multimodal Learning via Imbalanced
Learning", ICCV 2025), as the authors' shicaiwei123/ICCV2025-ARL @ 358af4f trains (main_arl_variance.py:107-174,
models/backbone.py GradScale, models/fusion_modules.py ConcatFusion_AUXI), for any number of modalities.

The uni-modal logits z_m are the fused head's slices on each modality's features, through the live head (it
learns from every loss). After the warm-up (0-based epochs > --arl_start, their `epoch > args.start`):

    L = CE(z) + gamma * sum_m CE(z_m),   and every gradient of encoder m (all its parameters) x (1 + w_m),

what their GradScale on each encoder's output does; before it L = CE(z) + sum_m CE(z_m), unscaled. Then the
norm of all gradients is clipped to 40.

w_m, per batch (main_arl_variance.py:116-153), from the uni-modal logits of the global batch:
    mag_m = mean over samples of sum_c |z_m,c|, normalised to sum to 1;
    H_m = mean entropy of softmax(z_m), normalised to sum to 1, then floored at 0.3;
    c_m = (1 / H_m) / sum_k (1 / H_k);
    w = softmax over m of T * (1 - mag_m) * c_m.
For two modalities 1 - mag_a = mag_v: their softmax(T * [mag_v * c_a, mag_a * c_v]); for M, the same softmax
over M terms (1 - mag_m = the other modalities' share of the magnitude). The 0.3 floor is theirs for two.

As released the computed weight is only printed: the weights GradScale reads are the 0.5 set in the warm-up
(:163-164), so both encoders' gradients are x 1.5. The paper's weight is the default (--arl_weights
intended), the release's constant --arl_weights released. Had their weight been assigned, GradScale (which
reads it in the forward pass) would have applied the previous batch's; we apply the batch's own.

Bias of the slices: theirs fc_out([f_m, 0]) = W_m f_m + b, the whole bias (--arl_bias full, default); split is
the project's b / M. Fusions: concat and sum (see dgl.py for why FiLM / gated are refused).
"""
import math
from typing import Dict

import torch
import torch.nn.functional as F

from models.fusion import total

from .. import distributed
from ..flag_types import NONNEGATIVE, Bounded
from .base import Method
from .dgl import check_sliced_fusion, clip_gradients, scale_encoder_gradients, slice_logits

ENTROPY_FLOOR = 0.3   # their clamp of the normalised entropies
RELEASED_WEIGHT = 0.5  # what their GradScale reads (main_arl_variance.py:163-164)
START = Bounded(int, low=-1)


def batch_statistics(unimodal: Dict[str, torch.Tensor]):
    """({m: mean_i sum_c |z_m|}, {m: mean_i entropy of softmax(z_m)}) over the global batch."""
    with torch.no_grad():
        rows = []
        for z in unimodal.values():
            p = z.float().softmax(1)
            rows += [z.float().abs().sum(1), -(p * torch.log(p + 1e-16)).sum(1)]
        per_sample = torch.stack(rows).double()
        sums = distributed.all_reduce_sum(torch.cat([per_sample.sum(1), per_sample.new_tensor([per_sample.shape[1]])]))
        means = (sums[:-1] / sums[-1]).tolist()
    names = list(unimodal)
    return dict(zip(names, means[0::2])), dict(zip(names, means[1::2]))


def arl_weights(magnitude: Dict[str, float], entropy: Dict[str, float], temperature: float) -> Dict[str, float]:
    """{m: w_m}: the softmax over m of T (1 - magnitude share of m) (inverse-entropy share of m)."""
    names = list(magnitude)
    mag_total, ent_total = max(sum(magnitude.values()), 1e-12), max(sum(entropy.values()), 1e-12)
    inverse = {m: 1 / max(entropy[m] / ent_total, ENTROPY_FLOOR) for m in names}
    certainty = {m: inverse[m] / sum(inverse.values()) for m in names}
    terms = {m: temperature * (1 - magnitude[m] / mag_total) * certainty[m] for m in names}
    top = max(terms.values())
    exp = {m: math.exp(terms[m] - top) for m in names}
    return {m: exp[m] / sum(exp.values()) for m in names}


class ARL(Method):
    name = "arl"

    @classmethod
    def add_args(cls, group, modalities):
        group.add_argument("--arl_gamma", type=NONNEGATIVE, default=4.0,
                           help="ARL: weight of the uni-modal losses after the warm-up (the authors' CREMA-D script 4; "
                                "Kinetics-Sounds 3, AVE 5)")
        group.add_argument("--arl_temperature", type=NONNEGATIVE, default=8.0,
                           help="ARL: T of the weights' softmax (the authors' CREMA-D script 8; Kinetics-Sounds and "
                                "AVE 4)")
        group.add_argument("--arl_start", type=START, default=5,
                           help="ARL: the authors' --start: the 0-based epochs up to this one (our 1 .. start+1) are "
                                "a warm-up with weight-1 uni-modal losses and unscaled gradients; -1: ARL from epoch 1")
        group.add_argument("--arl_weights", choices=["intended", "released"], default="intended",
                           help="ARL: w_m in the encoders' gradient factor 1 + w_m: intended = the per-batch weight "
                                "from logit magnitudes and entropies (the paper), released = 0.5 each (what their "
                                "code applies)")
        group.add_argument("--arl_clip", type=NONNEGATIVE, default=40.0,
                           help="ARL: clip the norm of all gradients to this (the authors' 40; 0: no clipping)")
        group.add_argument("--arl_bias", choices=["full", "split"], default="full",
                           help="ARL: bias of a concat head's uni-modal slices: full = the whole bias (the authors' "
                                "fc_out([f_m, 0])), split = 1/M of it each (the project's slices)")

    def __init__(self, args, *context):
        super().__init__(args, *context)
        self.scales = {m: 1.0 for m in self.modalities}

    def configure_model(self, model):
        check_sliced_fusion(self.name, model)

    def acting(self, epoch: int) -> bool:
        return epoch - 1 > self.args.arl_start  # their 0-based `epoch > args.start`

    def train_step(self, step):
        out = step.forward()
        model = step.raw_model
        sliced = slice_logits(model, out.feat, self.args.arl_bias == "full", detach_head=False)
        acting = self.acting(step.epoch)
        weight = self.args.arl_gamma if acting else 1.0
        loss = F.cross_entropy(out.logits.float(), step.labels) + weight * total(
            F.cross_entropy(sliced[m], step.labels) for m in self.modalities)
        step.check_finite(loss)
        intended = arl_weights(*batch_statistics({m: sliced[m] for m in self.modalities}), self.args.arl_temperature)
        applied = intended if self.args.arl_weights == "intended" else {m: RELEASED_WEIGHT for m in self.modalities}
        self.scales = {m: 1.0 + applied[m] if acting else 1.0 for m in self.modalities}
        self.logged = {**{f"arl_weight_{self.tags[m]}": intended[m] for m in self.modalities},
                       **{f"arl_scale_{self.tags[m]}": self.scales[m] for m in self.modalities}}
        extras = step.backward_and_step(loss, lambda: self.before_step(model, out, step.labels, step.epoch))
        return out, extras

    def before_step(self, model, out, labels, epoch):
        scale_encoder_gradients(model, self.scales)
        return {**self.logged, "arl_grad_norm": clip_gradients(model, self.args.arl_clip)}
