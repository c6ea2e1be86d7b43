"""CGGM, Classifier-Guided Gradient Modulation (Guo et al., NeurIPS 2024), as the authors' zrguo/CGGM trains
(src/foodtrain.py:81-135; src/msatrain.py:69-127 is the same for three modalities), for any number of modalities.

Each modality m gets an auxiliary classifier (a linear head, model.add_unimodal_heads(); theirs a small
transformer) on its DETACHED pooled encoder features, trained by its own cross-entropy in its own parameter group
(--cggm_cls_lr, --cggm_cls_weight_decay). Per step, with acc_m the global batch accuracy of aux classifier m and
acc_m(t-1) that of the previous step's batch (0 before the first step, as their acc1 = [0] * M):

    diff_m  = acc_m(t) - acc_m(t-1)
    coeff_m = (S - diff_m) / S,  S = sum_k diff_k + 1e-8          (M = 2: coeff_a = diff_v / (diff_a + diff_v))
    l_gm    = [sum_m |coeff_m| - sum_m coeff_m cos(W_aux_m, W_fusion_m)] / M

where W_fusion_m is the modality's slice of the fused head's weight (model.classifier_weights()[m]; theirs the
single out_layer on the fused feature) and W_aux_m the aux head's weight. As their code, the cosine is of WEIGHT
matrices (the variables are named *_grad; the paper's text speaks of gradient directions, and its formula could
not be read here), and l_gm enters the NEXT step's loss with the graph of its own step: its gradient, taken at
the previous weights, reaches only the fused head (their aux optimizer zeroes what reaches the aux heads), so
we evaluate the cosine at the previous weights with the aux weights detached. The step's loss is

    CE(z) + lambda * l_gm(t-1) + sum_m CE(aux_m),

one backward; then each encoder's gradients are multiplied by rho * coeff_m(t), the gradients of the model
(the aux heads aside, as their clip_grad_norm_(model.parameters()) leaves their classifier out) are clipped to
norm --cggm_clip, and the optimizer steps. Their coefficients are unbounded: when the diffs nearly cancel
(S ~ 0, common with small batches whose accuracies move in steps of 1/B) they reach ~1e7 and may be negative,
flipping an encoder's gradient; the clip then bounds the step. --cggm_clamp C (opt-in) keeps them in [0, C].
"""
from typing import Dict, Optional

import torch
import torch.nn.functional as F

from models.fusion import total

from .. import distributed
from ..flag_types import NONNEGATIVE, POSITIVE
from .base import Method, encoder_params
from .scores import global_batch_mean

EPS = 1e-8  # their diff_sum = sum(diff) + 1e-8, numerator and denominator alike


def cggm_coefficients(acc: Dict[str, float], acc_prev: Dict[str, float],
                      clamp: Optional[float] = None) -> Dict[str, float]:
    """{m: coeff_m} from this step's and the previous step's aux accuracies; `clamp`: keep each in [0, clamp]."""
    diff = {m: acc[m] - acc_prev[m] for m in acc}
    diff_sum = sum(diff.values()) + EPS
    coeff = {m: (diff_sum - diff[m]) / diff_sum for m in acc}
    if clamp is not None:
        coeff = {m: min(max(c, 0.0), clamp) for m, c in coeff.items()}
    return coeff


def direction_loss(coeff: Dict[str, float], aux_weights: Dict[str, torch.Tensor],
                   fusion_weights: Dict[str, torch.Tensor], at: Optional[Dict[str, torch.Tensor]] = None):
    """l_gm = [sum |coeff_m| - sum coeff_m cos(W_aux_m, W_fusion_m)] / M, differentiable in `fusion_weights` only.
    `at` ({m: earlier values of W_fusion_m}): evaluate there, with the gradient still reaching `fusion_weights`
    (the authors' l_gm, built at step t - 1 and backpropagated at step t)."""
    cosines = []
    for m in coeff:
        w = fusion_weights[m]
        if at is not None:
            w = w + (at[m].to(w) - w).detach()  # the value of `at`, the gradient of w
        cosines.append(F.cosine_similarity(aux_weights[m].detach().to(w).reshape(-1), w.reshape(-1), dim=0))
    return (sum(abs(c) for c in coeff.values()) - total(coeff[m] * cos for m, cos in zip(coeff, cosines))) / len(coeff)


def global_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The batch accuracy over the global batch, so every process scales its gradients alike."""
    with torch.no_grad():
        counts = torch.stack([(logits.argmax(1) == labels).sum().double(),
                              torch.tensor(float(labels.numel()), dtype=torch.float64, device=labels.device)])
        counts = distributed.all_reduce_sum(counts)
        return (counts[0] / counts[1]).item()


class CGGM(Method):
    name = "cggm"

    @classmethod
    def add_args(cls, group, modalities):
        group.add_argument("--cggm_rho", type=NONNEGATIVE, default=1.3,
                           help="CGGM: encoder gradients x rho * coeff_m (the authors' rou, 1.3 in every recipe)")
        group.add_argument("--cggm_lambda", type=NONNEGATIVE, default=0.05,
                           help="CGGM: weight of the direction loss l_gm (the authors: 0.05 for Food-101, their "
                                "two-modality classification recipe; 0.2 for MOSI / IEMOCAP)")
        group.add_argument("--cggm_cls_lr", type=POSITIVE, default=5e-4,
                           help="CGGM: learning rate of the auxiliary classifiers (the authors' cls_lr, with Adam / "
                                "AdamW); logged as lr_cggm_heads")
        group.add_argument("--cggm_cls_weight_decay", type=NONNEGATIVE, default=3e-3,
                           help="CGGM: weight decay of the auxiliary classifiers (the authors' 3e-3)")
        group.add_argument("--cggm_clip", type=NONNEGATIVE, default=0.8,
                           help="CGGM: clip the model's gradient norm (aux classifiers aside) to this after the "
                                "modulation (the authors' clip 0.8; 0: no clipping)")
        group.add_argument("--cggm_clamp", type=POSITIVE, default=None, metavar="C",
                           help="CGGM: keep each coefficient in [0, C] (off by default, as the authors': theirs can "
                                "be negative, flipping an encoder's gradient, or reach ~1e7 when the accuracy gains "
                                "cancel)")

    def __init__(self, args, *context):
        super().__init__(args, *context)
        self.acc_prev = {m: 0.0 for m in self.modalities}  # the authors' acc1 = [0] * num_mod
        self.coeff = {m: 1.0 for m in self.modalities}     # this step's, for before_step
        self.gm_state = None  # the previous step's (coefficients, aux weights, fused-head weights), for its l_gm

    def configure_model(self, model):
        model.add_unimodal_heads()

    def param_groups(self, model):
        heads = [p for p in model.unimodal_heads.parameters() if p.requires_grad]
        taken = {id(p) for p in heads}
        rest = [p for p in model.parameters() if p.requires_grad and id(p) not in taken]
        return [{"params": rest},
                {"params": heads, "lr": self.args.cggm_cls_lr, "weight_decay": self.args.cggm_cls_weight_decay,
                 "name": "cggm_heads"}]

    def start_epoch(self, epoch, model, optimizer):
        # their aux optimizer has no scheduler: --lr_decay_step's StepLR decays the other parameters only
        for group in optimizer.param_groups:
            if group.get("name") == "cggm_heads":
                group["lr"] = self.args.cggm_cls_lr
        return {}

    def train_step(self, step):
        raw = step.raw_model
        out = step.forward()
        with step.precision.autocast():  # aux classifiers on detached features: their CE trains the heads alone
            aux = {m: raw.unimodal_heads[m](out.enc[m].detach()).float() for m in self.modalities}
        aux_losses = {m: F.cross_entropy(aux[m], step.labels) for m in self.modalities}
        loss = F.cross_entropy(out.logits.float(), step.labels) + total(aux_losses.values())
        fusion = raw.classifier_weights()
        logged = {}
        if self.gm_state is not None:  # their l_gm is None before the first step
            l_gm = direction_loss(self.gm_state["coeff"], self.gm_state["aux"], fusion, at=self.gm_state["fusion"])
            loss = loss + self.args.cggm_lambda * l_gm
            logged["cggm_l_gm"] = l_gm.item()
        step.check_finite(loss)

        acc = {m: global_accuracy(aux[m], step.labels) for m in self.modalities}
        self.coeff = cggm_coefficients(acc, self.acc_prev, self.args.cggm_clamp)
        self.acc_prev = acc
        self.gm_state = {"coeff": dict(self.coeff),
                         "aux": {m: raw.unimodal_heads[m].weight.detach().clone() for m in self.modalities},
                         "fusion": {m: fusion[m].detach().clone() for m in self.modalities}}
        logged.update({f"cggm_acc_{self.tags[m]}": acc[m] for m in self.modalities})
        logged.update({f"cggm_aux_loss_{self.tags[m]}": global_batch_mean(aux_losses[m], step.batch_size)
                       for m in self.modalities})
        logged.update({f"cggm_coeff_{self.tags[m]}": self.coeff[m] for m in self.modalities})
        self.logged = logged
        extras = step.backward_and_step(loss, lambda: self.before_step(raw, out, step.labels, step.epoch))
        return out, extras

    def before_step(self, model, out, labels, epoch):
        for m in self.modalities:
            factor = self.args.cggm_rho * self.coeff[m]
            for p in encoder_params(model, m):
                if p.grad is not None:
                    p.grad.mul_(factor)
        if self.args.cggm_clip > 0:
            heads = {id(p) for p in model.unimodal_heads.parameters()}
            params = [p for p in model.parameters() if p.grad is not None and id(p) not in heads]
            norm = torch.nn.utils.clip_grad_norm_(params, self.args.cggm_clip)
            self.logged["cggm_grad_norm"] = norm.item()
        return self.logged

    def state_dict(self):
        return {"acc_prev": dict(self.acc_prev), "gm_state": self.gm_state}

    def load_state_dict(self, state):
        self.acc_prev.update(state.get("acc_prev", {}))
        self.gm_state = state.get("gm_state", self.gm_state)
