"""LFM, "Facilitating Multimodal Classification via Dynamically Learning Modality Gap" (Yang et al.,
NeurIPS 2024), as the authors' Crema_epoch_learnable.py trains (njustkmg/NeurIPS24-LFM).

    loss = 2 (alpha_cls CE((z_a + z_v) / 2) + alpha_al D(z_a, z_v))

with the modalities' logits z_m (their model: a linear head per encoder, fused = z_a + z_v, which is
--fusion_method sum here; other fusions use the fused head's slices). D is their "Jensen-Shannon"
Alignment(): with m = (p + q) / 2 it computes F.kl_div(p.log(), m) + F.kl_div(q.log(), m), halved,
i.e. (KL(m || p) + KL(m || q)) / 2, not the Jensen-Shannon divergence (KL(p || m) + KL(q || m)) / 2,
which --lfm_divergence js gives. With M modalities (BalanceBenchmark's LFM_trainer; the authors' code has
two) the CE is of the mean logits sum_m z_m / M and D is averaged over the M (M - 1) / 2 pairs.

Before every epoch (their getAlpha_Learnable) the alignment weight takes one hyper-gradient step on
a small held-out batch: with g = grad_theta L_total (a graph of its own) and c = grad_theta L_cls,
the Hessian-vector product h = grad_theta (g . c); alpha_al <- clip(alpha_al - lr_alpha mean(h of the
first parameter tensor), 0.05, 0.95), alpha_cls = 1 - alpha_al; lr_alpha halves every 20 epochs. They
hold 16 random training clips out of training and use the first 8 (--lfm_holdout_clips); with
--val_split, the clips come from the validation set. (alpha_cls, alpha_al) start at their (0.05, 0.95);
BalanceBenchmark starts at (0.95, 0.05). --lfm_schedule fitted gives their fitted polynomial instead.
"""
import random
from itertools import combinations

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.data import default_collate

from dataset.errors import DataError
from models.fusion import total

from .. import distributed
from ..flag_types import NONNEGATIVE, Bounded
from .base import Method
from .holdout import KeyedSubset, held_out
from .scores import global_batch_mean

HOLDOUT = Bounded(int, low=2, why="the update uses the first half of the held-out clips")
ALIGN_WEIGHT = Bounded(float, low=0.05, high=0.95, why="LFM clips the alignment weight to [0.05, 0.95]")
FITTED = ([2.04623704e-01, 3.35472727e-03, 1.22989557e-04, -2.92947416e-06, 2.23835486e-08, -5.39717505e-11],
          [7.95376296e-01, -3.35472727e-03, -1.22989557e-04, 2.92947416e-06, -2.23835486e-08, 5.39717505e-11])


def divergence(logits_p: torch.Tensor, logits_q: torch.Tensor, kind: str = "authors") -> torch.Tensor:
    p, q = F.softmax(logits_p.float(), -1), F.softmax(logits_q.float(), -1)
    m = 0.5 * (p + q)
    if kind == "js":
        return 0.5 * (F.kl_div(m.log(), p, reduction="batchmean") + F.kl_div(m.log(), q, reduction="batchmean"))
    return 0.5 * (F.kl_div(p.log(), m, reduction="batchmean") + F.kl_div(q.log(), m, reduction="batchmean"))


def fitted_weights(epoch0: int):
    """Their getAlpha_Learnable_Fitted: (alpha_cls, alpha_al) at a 0-based epoch."""
    return tuple(sum(c * epoch0 ** i for i, c in enumerate(coef)) for coef in FITTED)


def lfm_losses(out, labels, kind: str):
    """(L_cls, L_al): CE of the modalities' mean logits, and D averaged over the pairs of modalities (one pair, the
    authors' term, for two)."""
    names = list(out.unimodal)
    loss_cls = F.cross_entropy(total(out.unimodal[m].float() for m in names) / len(names), labels)
    pairs = list(combinations(names, 2))
    loss_al = total(divergence(out.unimodal[p], out.unimodal[q], kind) for p, q in pairs) / len(pairs)
    return loss_cls, loss_al


def alpha_gradient(model, inputs, labels, weights, kind: str) -> float:
    """Mean over the first parameter tensor of the Hessian-vector product of L_total with grad L_cls."""
    params = [p for p in model.parameters() if p.requires_grad]
    # attention in its plain form: the fused kernels (transformer encoders: MOSEI, BERT) have no second derivative
    with sdpa_kernel(SDPBackend.MATH):
        loss_cls, loss_al = lfm_losses(model(inputs), labels, kind)
        loss_total = weights[0] * loss_cls + weights[1] * loss_al
        g_total = torch.autograd.grad(loss_total, params, create_graph=True, allow_unused=True)
        g_cls = torch.autograd.grad(loss_cls, params, retain_graph=True, allow_unused=True)
        used = [i for i, (a, b) in enumerate(zip(g_total, g_cls)) if a is not None and b is not None]
        hvp = torch.autograd.grad([g_total[i] for i in used], params, grad_outputs=[g_cls[i] for i in used],
                                  allow_unused=True)
    return 0.0 if hvp[0] is None else hvp[0].mean().item()


class LFM(Method):
    name = "lfm"

    @classmethod
    def add_args(cls, group, modalities):
        group.add_argument("--lfm_lr_alpha", type=NONNEGATIVE, default=1e-4,
                           help="LFM: step size of the alignment weight (the authors' and BB's 1e-4), halved every 20 epochs")
        group.add_argument("--lfm_align_init", type=ALIGN_WEIGHT, default=0.95,
                           help="LFM: initial alignment weight alpha_al (the authors' 0.95; BalanceBenchmark 0.05)")
        group.add_argument("--lfm_holdout_clips", type=HOLDOUT, default=16,
                           help="LFM: clips held out for the weight's update, of which the first half is used (authors' 16)")
        group.add_argument("--lfm_divergence", choices=["authors", "js"], default="authors",
                           help="LFM: alignment term: authors = their Alignment() (KL(m||p) + KL(m||q)) / 2, js = the "
                                "Jensen-Shannon divergence")
        group.add_argument("--lfm_schedule", choices=["learned", "fitted"], default="learned",
                           help="LFM: learned = the hyper-gradient update, fitted = their fitted polynomial of the epoch")

    def __init__(self, args, *context):
        super().__init__(args, *context)
        self.weights = (1 - args.lfm_align_init, args.lfm_align_init)

    def split_train(self, train, seed, val=None):
        n = self.args.lfm_holdout_clips
        source = val if val is not None else train
        if n >= len(source):
            raise DataError(f"--lfm_holdout_clips {n} needs more clips than the {len(source)} of the "
                            f"{'validation' if val is not None else 'train'} split: give fewer")
        order = list(range(len(source)))
        random.Random(seed).shuffle(order)
        chosen = order[:n]
        if val is not None:
            self.batch_clips = KeyedSubset(val, chosen)
            return train, None
        self.batch_clips = held_out(train, chosen)
        return KeyedSubset(train, sorted(order[n:])), self.batch_clips

    def update_batch(self, model):
        """The first half of the held-out clips as the model takes them ({name: input}, labels), the same on every
        process (Method.prepare_batch: each modality's tensors prepared on the device, as the training batches)."""
        half = len(self.batch_clips) // 2
        inputs, labels = self.prepare_batch(default_collate([self.batch_clips[i] for i in range(half)]))
        weight = next(model.parameters())
        return {m: x.to(weight.dtype) for m, x in inputs.items()}, labels

    def start_epoch(self, epoch, model, optimizer):
        epoch0 = epoch - 1
        lr_alpha = self.args.lfm_lr_alpha / 2 ** (epoch0 // 20)  # theirs halves it at epochs 20, 40, ...
        if self.args.lfm_schedule == "fitted":
            self.weights = fitted_weights(epoch0)
        else:
            was_training = model.training
            try:
                inputs, labels = self.update_batch(model)
                model.eval()  # fixed BatchNorm statistics: one answer on every process, no running-stat update
                grad = alpha_gradient(model, inputs, labels, self.weights, self.args.lfm_divergence)
            finally:
                model.train(was_training)
            grad = distributed.all_reduce_sum(torch.tensor(grad, dtype=torch.float64, device=labels.device)).item() \
                / distributed.world_size()
            align = min(0.95, max(0.05, self.weights[1] - lr_alpha * grad))
            self.weights = (1 - align, align)
        return {"lfm_alpha_cls": self.weights[0], "lfm_alpha_align": self.weights[1], "lfm_lr_alpha": lr_alpha}

    def loss(self, out, labels, epoch):
        loss_cls, loss_al = lfm_losses(out, labels, self.args.lfm_divergence)
        self.logged = {"lfm_align": global_batch_mean(loss_al, len(labels))}
        return 2 * (self.weights[0] * loss_cls + self.weights[1] * loss_al)

    def state_dict(self):
        return {"weights": list(self.weights)}

    def load_state_dict(self, state):
        self.weights = tuple(state.get("weights", self.weights))
