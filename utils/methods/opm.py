"""OPM, On-the-fly Prediction Modulation (Wei, Hu, Du, Wen, TPAMI 2024), as the authors'
BML_TPAMI2024/code (models/Classifier.py Modality_drop, main.py) trains.

Per step, the uni-modal scores s_m (sum over the batch of softmax(z_m)[true class], z_m from the
fused head's slices on the encoder features, weights detached) give each modality a drop
probability
    q_m = clip(q_base * (1 + lambda * tanh(relu(s_m / s_other - 1))), 0, 1)  if s_m > s_other, else 0,
so only the leading modality can be dropped. With probability p_exe the batch is modulated: every
sample keeps modality m's feature with probability 1 - q_m (a Bernoulli mask), and all features are
divided by 1 - theta, theta = sum_m d_m q_m / sum_m d_m (d_m the feature widths). Samples that lost
every modality leave the loss (with two modalities and one q_m > 0 that cannot happen). The loss is
CE of the fused head on the modulated features. The first --opm_warmup epochs (the authors': their
epochs 0..5, our 1..6) train without dropping.

The scores are computed without gradient. The authors' code (Classifier.py:9-21, 139-146) computes them
from features that are not detached and returns theta itself as theta's gradient (custom_autograd),
so a made-up gradient dL/dtheta = theta flows through q into both encoders; the detached weights
there show the scores were meant to carry none.

The masks are drawn for the global batch and each process takes its rows, so torchrun draws what
one process draws. The fused head must be linear in the features: --fusion_method concat or sum.

Defined for two modalities (a and v above: the dataset's first and second), as the authors' calcu_q computes
the drop probabilities; their Modality_drop masks and rescales any number of features, but neither their code
nor anything we could read of the paper says how q_m is set for more (BalanceBenchmark's OPM_trainer divides
by the sum of the other scores for three: its own choice), so other counts are refused.
"""
import math
from typing import Dict

import torch
import torch.nn.functional as F

from dataset.errors import DataError
from models.fusion import total

from .. import distributed
from ..flag_types import NONNEGATIVE, NONNEGATIVE_INT, PROBABILITY
from .base import Method
from .scores import local_rows, true_class_scores


def drop_probabilities(score_a: float, score_v: float, q_base: float, lam: float):
    """(q_a, q_v) from the two modalities' scores."""
    def q(mine, other):
        ratio = math.tanh(max(mine / other - 1, 0.0)) if other > 0 else 1.0
        return min(max(q_base * (1 + lam * ratio), 0.0), 1.0) if ratio > 0 else 0.0
    return q(score_a, score_v), q(score_v, score_a)


def drop_features(enc: Dict[str, torch.Tensor], keep: Dict[str, torch.Tensor], q: Dict[str, float]):
    """{m: f_m * keep_m / (1 - theta)}, theta = sum_m d_m q_m / sum_m d_m (the authors' Modality_drop)."""
    widths = {m: f.shape[1] for m, f in enc.items()}
    theta = total(widths[m] * q[m] for m in enc) / total(widths.values())
    return {m: f * keep[m][:, None] / (1 - theta) for m, f in enc.items()}


class OPM(Method):
    name = "opm"
    n_modalities = 2  # the authors' drop probabilities compare two modalities' scores

    @classmethod
    def add_args(cls, group, modalities):
        group.add_argument("--opm_q_base", type=PROBABILITY, default=0.5,
                           help="OPM: base drop probability of the leading modality (the authors' train_opm.sh: 0.5)")
        group.add_argument("--opm_lambda", type=NONNEGATIVE, default=0.5,
                           help="OPM: how much the score ratio raises the drop probability (train_opm.sh: 0.5)")
        group.add_argument("--opm_p_exe", type=PROBABILITY, default=0.7,
                           help="OPM: probability that a batch is modulated at all (train_opm.sh: 0.7)")
        group.add_argument("--opm_warmup", type=NONNEGATIVE_INT, default=6,
                           help="OPM: first epochs trained without dropping (the authors': their 0-based epochs 0..5)")

    def __init__(self, args, *context):
        super().__init__(args, *context)
        self.keep = None

    def configure_model(self, model):
        if model.fusion_name not in ("concat", "sum"):
            raise DataError(f"--method opm drops encoder features before a linear fused head: use --fusion_method "
                            f"concat or sum (not {model.fusion_name})")

    def idle_log(self):
        return {**{f"opm_q_{self.tags[m]}": 0.0 for m in self.modalities}, "opm_modulated": 0.0}

    def train_step(self, step):
        self.keep, self.logged = None, self.idle_log()
        if step.epoch > self.args.opm_warmup:
            step.raw_model.feature_transform = lambda enc: self.modulate(step.raw_model, enc, step.labels)
        try:
            return super().train_step(step)
        finally:
            step.raw_model.feature_transform = None

    def modulate(self, model, enc, labels):
        """The step's encoder features {name: (B, d)}, some dropped (model.feature_transform)."""
        first, second = self.modalities
        with torch.no_grad():
            logits = model.unimodal_logits({m: enc[m].detach() for m in self.modalities})
        scores = true_class_scores(labels, logits[first], logits[second])
        q = dict(zip(self.modalities, drop_probabilities(*scores, self.args.opm_q_base, self.args.opm_lambda)))
        # Drawn alike on every process (same generator state), for the global batch.
        executed = torch.rand(1).item() >= 1 - self.args.opm_p_exe
        self.logged = {**{f"opm_q_{self.tags[m]}": q[m] for m in self.modalities}, "opm_modulated": float(executed)}
        if not executed:
            return enc
        n = len(self.modalities)
        keep = torch.bernoulli(torch.tensor([1 - q[m] for m in self.modalities]).expand(
            len(labels) * distributed.world_size(), n))
        keep = local_rows(keep).to(enc[first].device, enc[first].dtype)
        self.keep = keep.sum(1) > 0
        return {**enc, **drop_features({m: enc[m] for m in self.modalities},
                                       {m: keep[:, i] for i, m in enumerate(self.modalities)}, q)}

    def loss(self, out, labels, epoch):
        if self.keep is None or bool(self.keep.all()):
            return super().loss(out, labels, epoch)
        return F.cross_entropy(out.logits.float()[self.keep], labels[self.keep])
