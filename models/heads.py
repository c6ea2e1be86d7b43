"""Heads a balancing method may put on the model: a classifier shared by the two modalities in place
of the fusion layer (MLA, ReconBoost), and a combiner that turns the two modalities' logits into the
fused prediction (MLA's entropy weights, ReconBoost's boost rate, AMCo's class-mixing layer).

A head is described by a plain dict (a "head spec"), e.g.

    {"shared": {"hidden": 256}, "combine": {"name": "boosted", "boost_rate": 1.0}}

which the checkpoint keeps (model_config["head"]), so evaluating a checkpoint rebuilds the model the
method trained without the method's flags. Combiners return (logits_a, logits_v, logits): the uni-modal
logits they were given (AMCo's training masks change them) and the fused logits.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .encoders import FEATURE_DIM


class SharedClassifier(nn.Module):
    """One classifier scoring either modality's encoder features, optionally behind a hidden ReLU layer
    (ReconBoost's common-space head 512 -> 256 -> C). It stands where a fusion module does: forward(a, v)
    gives what its last layer sees of each modality, and the plain sum of the two modalities' outputs."""

    def __init__(self, n_classes: int, dim: int = FEATURE_DIM, hidden: int = 0):
        super().__init__()
        self.hidden = nn.Linear(dim, hidden) if hidden else None
        self.fc_out = nn.Linear(hidden or dim, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.hidden(x)) if self.hidden is not None else x

    def forward(self, a, v):
        a, v = self.features(a), self.features(v)
        return a, v, self.fc_out(a) + self.fc_out(v)

    def classifier_weights(self):
        return self.fc_out.weight, self.fc_out.weight

    def classifier_biases(self):
        return self.fc_out.bias, self.fc_out.bias

    def classifier_grads(self):
        return self.fc_out.weight.grad, self.fc_out.weight.grad

    def classifier_layer_biases(self):
        return [self.fc_out.bias]


def prediction_entropy(logits: torch.Tensor, over_batch: bool = False) -> torch.Tensor:
    """-sum p log p per sample of the softmax over classes; over_batch: of the softmax over the batch
    dimension, summed over the whole batch (one number, as the authors' MLA calculate_entropy)."""
    log_p = F.log_softmax(logits.float(), dim=0 if over_batch else 1)
    entropy = -(log_p.exp() * log_p)
    return entropy.sum() if over_batch else entropy.sum(1)


class EntropyWeighted(nn.Module):
    """MLA's test-time fusion: w_m proportional to exp(H_max - H_m), H_m the entropy of modality m's
    prediction, so the more certain modality weighs more. mode "sample": per sample (the paper, and
    BalanceBenchmark); "batch": one weight per batch from softmaxes over the batch dimension, summed
    (the authors' calculate_entropy); "fixed": w_audio = audio_weight (the authors' fixed fusion)."""

    def __init__(self, n_classes: int, mode: str = "sample", audio_weight: float = 0.55):
        super().__init__()
        if mode not in ("sample", "batch", "fixed"):
            raise ValueError(f"unknown entropy fusion mode {mode!r}")
        self.mode, self.audio_weight = mode, float(audio_weight)

    def weights(self, logits_a: torch.Tensor, logits_v: torch.Tensor):
        if self.mode == "fixed":
            return self.audio_weight, 1.0 - self.audio_weight
        if self.mode == "batch":
            h_a, h_v = prediction_entropy(logits_a, True), prediction_entropy(logits_v, True)
        else:
            h_a, h_v = prediction_entropy(logits_a)[:, None], prediction_entropy(logits_v)[:, None]
        top = torch.maximum(h_a, h_v)
        e_a, e_v = torch.exp(top - h_a), torch.exp(top - h_v)
        return e_a / (e_a + e_v), e_v / (e_a + e_v)

    def forward(self, logits_a, logits_v, logits):
        w_a, w_v = self.weights(logits_a, logits_v)
        return logits_a, logits_v, w_a * logits_a + w_v * logits_v


class Boosted(nn.Module):
    """ReconBoost's ensemble: beta * (sum of the members' logits) with a learnable boost rate beta. `members`
    (1 or 0 for audio, visual; a buffer, so checkpoints keep it) says which modalities the ensemble holds: the
    method leaves out one whose first stage has not begun, as the authors' ensemble does."""

    def __init__(self, n_classes: int, boost_rate: float = 1.0):
        super().__init__()
        self.boost_rate = nn.Parameter(torch.tensor(float(boost_rate)))
        self.register_buffer("members", torch.ones(2))

    def forward(self, logits_a, logits_v, logits):
        return logits_a, logits_v, self.boost_rate * (self.members[0] * logits_a + self.members[1] * logits_v)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # checkpoints written before the buffer existed scored every modality
        state_dict.setdefault(prefix + "members", torch.ones(2))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class ClassMixing(nn.Module):
    """AMCo's fused prediction: a C x C linear layer on the sum of the two modalities' logits. While
    training, a method may set `masks` (one (C,) mask per modality, or None) to mask a modality's logits
    before they are summed; evaluation never masks."""

    def __init__(self, n_classes: int):
        super().__init__()
        self.linear = nn.Linear(n_classes, n_classes)
        self.masks: Optional[tuple] = None

    def forward(self, logits_a, logits_v, logits):
        if self.training and self.masks is not None:
            mask_a, mask_v = self.masks
            logits_a = logits_a if mask_a is None else logits_a * mask_a
            logits_v = logits_v if mask_v is None else logits_v * mask_v
        return logits_a, logits_v, self.linear(logits_a + logits_v)


COMBINERS = {"entropy": EntropyWeighted, "boosted": Boosted, "class_mixing": ClassMixing}


def build_combiner(n_classes: int, spec: dict) -> nn.Module:
    options = {k: v for k, v in spec.items() if k != "name"}
    if spec.get("name") not in COMBINERS:
        raise ValueError(f"unknown combiner {spec.get('name')!r}; choose one of {sorted(COMBINERS)}")
    return COMBINERS[spec["name"]](n_classes, **options)
