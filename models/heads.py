"""Heads a balancing method may put on the model: a classifier shared by the modalities in place
of the fusion layer (MLA, ReconBoost; AUG's, to which the method adds boosting learners), and a combiner
that turns the modalities' logits into the fused prediction (MLA's entropy weights, ReconBoost's boost rate,
AMCo's class-mixing layer, the sum of separate uni-modal heads of BSS / IPRM, DI-MML's certainty-weighted ensemble).

A head is described by a plain dict (a "head spec"), e.g.

    {"shared": {"hidden": 256}, "combine": {"name": "boosted", "boost_rate": 1.0}}

which the checkpoint keeps (model_config["head"]), so evaluating a checkpoint rebuilds the model the
method trained without the method's flags. Combiners take ({name: uni-modal logits}, fused logits, {name: separate
uni-modal head's logits} or None) and return
the uni-modal logits they were given (AMCo's training masks change them) and the fused logits.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .encoders import FEATURE_DIM
from .fusion import total


class SharedClassifier(nn.Module):
    """One classifier scoring every modality's encoder features, optionally behind a hidden ReLU layer
    (ReconBoost's common-space head 512 -> 256 -> C). It stands where a fusion module does: forward(feats)
    gives what its last layer sees of each modality, and the plain sum of the modalities' outputs."""

    def __init__(self, n_classes: int, names, dim: int = FEATURE_DIM, hidden: int = 0):
        super().__init__()
        self.names = tuple(names)
        self.hidden = nn.Linear(dim, hidden) if hidden else None
        self.fc_out = nn.Linear(hidden or dim, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.hidden(x)) if self.hidden is not None else x

    def forward(self, feats):
        feats = {m: self.features(feats[m]) for m in self.names}
        return feats, total(self.fc_out(feats[m]) for m in self.names)

    def classifier_weights(self):
        return {m: self.fc_out.weight for m in self.names}

    def classifier_biases(self):
        return {m: self.fc_out.bias for m in self.names}

    def classifier_grads(self):
        return {m: self.fc_out.weight.grad for m in self.names}

    def classifier_layer_biases(self):
        return [self.fc_out.bias]


class BoostedLearners(nn.Module):
    """AUG's head (Jiang et al., NeurIPS 2025; njustkmg/NeurIPS25-AUG model/AudioVideo.py): per modality an
    embedding Linear(d_m, hidden) + ReLU, and the boosting learners of the same shape that the method adds during
    training (`added`: the modality each went to, in the order they were added), all scored by ONE classifier fc_out
    (hidden -> C). A modality's logits are the sum of its learners' logits, fc_out(sum of their outputs) with the
    bias once per learner. It stands where a fusion module does: forward(feats) gives each modality's summed learner
    outputs and the sum of the modalities' logits. `dims`: {name: d_m}, the encoders' feature sizes. Every layer starts
    as their weight_init and add_layer start it: Xavier-normal weight, zero bias."""

    def __init__(self, n_classes: int, names, dims=None, hidden: int = 256, added=()):
        super().__init__()
        self.names = tuple(names)
        self.dims = {m: int((dims or {}).get(m, FEATURE_DIM)) for m in self.names}
        self.hidden = hidden
        self.embedding = nn.ModuleDict({m: self.layer(self.dims[m], hidden) for m in self.names})
        self.learners = nn.ModuleDict({m: nn.ModuleList() for m in self.names})
        self.fc_out = self.layer(hidden, n_classes)
        self.added = []
        for name in added:
            self.add_learner(name)

    @staticmethod
    def layer(d_in: int, d_out: int) -> nn.Linear:
        layer = nn.Linear(d_in, d_out)
        nn.init.xavier_normal_(layer.weight)
        nn.init.zeros_(layer.bias)
        return layer

    def add_learner(self, name: str) -> nn.Module:
        """A new learner for modality `name`."""
        layer = self.layer(self.dims[name], self.hidden)
        self.learners[name].append(layer.to(self.fc_out.weight.device, self.fc_out.weight.dtype))
        self.added.append(name)
        return layer

    def parts(self, x: torch.Tensor, name: str):
        """The outputs of modality `name`'s learners on its features x: the embedding's first, the newest last."""
        return [F.relu(self.embedding[name](x))] + [F.relu(layer(x)) for layer in self.learners[name]]

    def forward(self, feats):
        summed = {m: total(self.parts(feats[m], m)) for m in self.names}
        biases = self.classifier_biases()
        return summed, total(F.linear(summed[m], self.fc_out.weight, biases[m]) for m in self.names)

    def classifier_weights(self):
        return {m: self.fc_out.weight for m in self.names}

    def classifier_biases(self):
        return {m: self.fc_out.bias * (1 + len(self.learners[m])) for m in self.names}

    def classifier_grads(self):
        return {m: self.fc_out.weight.grad for m in self.names}

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
    (the authors' calculate_entropy); "fixed": the first modality weighs first_weight and the second the
    rest (the authors' fixed fusion, audio 0.55; two modalities only)."""

    def __init__(self, n_classes: int, mode: str = "sample", audio_weight: float = 0.55):
        super().__init__()
        if mode not in ("sample", "batch", "fixed"):
            raise ValueError(f"unknown entropy fusion mode {mode!r}")
        # `audio_weight`: the head spec's key since the first checkpoints; it is the first modality's weight
        self.mode, self.audio_weight = mode, float(audio_weight)

    def weights(self, unimodal):
        names = list(unimodal)
        if self.mode == "fixed":
            if len(names) != 2:
                raise ValueError("the fixed entropy fusion weighs two modalities")
            return {names[0]: self.audio_weight, names[1]: 1.0 - self.audio_weight}
        if self.mode == "batch":
            entropy = {m: prediction_entropy(unimodal[m], True) for m in names}
        else:
            entropy = {m: prediction_entropy(unimodal[m])[:, None] for m in names}
        top = entropy[names[0]]
        for m in names[1:]:
            top = torch.maximum(top, entropy[m])
        e = {m: torch.exp(top - entropy[m]) for m in names}
        norm = total(e.values())
        return {m: e[m] / norm for m in names}

    def forward(self, unimodal, logits, heads=None):
        w = self.weights(unimodal)
        return unimodal, total(w[m] * unimodal[m] for m in unimodal)


class Boosted(nn.Module):
    """ReconBoost's ensemble: beta * (sum of the members' logits) with a learnable boost rate beta. `members`
    (1 or 0 per modality, in order; a buffer, so checkpoints keep it) says which modalities the ensemble holds:
    the method leaves out one whose first stage has not begun, as the authors' ensemble does."""

    def __init__(self, n_classes: int, boost_rate: float = 1.0, n_modalities: int = 2):
        super().__init__()
        self.boost_rate = nn.Parameter(torch.tensor(float(boost_rate)))
        self.register_buffer("members", torch.ones(n_modalities))

    def forward(self, unimodal, logits, heads=None):
        return unimodal, self.boost_rate * total(self.members[i] * x for i, x in enumerate(unimodal.values()))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # checkpoints written before the buffer existed scored every modality
        state_dict.setdefault(prefix + "members", torch.ones_like(self.members))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class ClassMixing(nn.Module):
    """AMCo's fused prediction: a C x C linear layer on the sum of the modalities' logits. While training, a
    method may set `masks` ({name: (C,) mask or None}) to mask a modality's logits before they are summed;
    evaluation never masks."""

    def __init__(self, n_classes: int):
        super().__init__()
        self.linear = nn.Linear(n_classes, n_classes)
        self.masks: Optional[dict] = None

    def forward(self, unimodal, logits, heads=None):
        if self.training and self.masks is not None:
            unimodal = {m: x if self.masks.get(m) is None else x * self.masks[m] for m, x in unimodal.items()}
        return unimodal, self.linear(total(unimodal.values()))


def _separate_heads(heads, name: str):
    if heads is None:
        raise ValueError(f"the {name} combiner scores the separate uni-modal heads: the model has none "
                         "(add_unimodal_heads)")
    return heads


class HeadsSum(nn.Module):
    """The prediction as the sum of the separate uni-modal heads' logits (BSS on CREMA-D, IPRM with the fused
    head too, BSS on Kinetics-Sounds): the fused head is left out unless `with_fused`. The heads' logits become the
    per-modality ones (the authors score each modality by its own head)."""

    def __init__(self, n_classes: int, with_fused: bool = False):
        super().__init__()
        self.with_fused = bool(with_fused)

    def forward(self, unimodal, logits, heads=None):
        # each modality's own prediction is now its head's (what per-modality accuracies score)
        parts = list(_separate_heads(heads, "heads_sum").values()) + ([logits] if self.with_fused else [])
        return dict(heads), total(parts)


class CertaintyWeighted(nn.Module):
    """DI-MML's test-time ensemble: sum_k w_k z_k over the separate uni-modal heads and the fused head, with
    w = softmax over k of (the largest class probability of z_k) / temperature, per sample: the more certain a
    head is on a sample, the more it counts there. The heads' logits become the per-modality ones."""

    def __init__(self, n_classes: int, temperature: float = 1.0):
        super().__init__()
        self.temperature = float(temperature)

    def forward(self, unimodal, logits, heads=None):
        parts = [*_separate_heads(heads, "certainty").values(), logits]
        certainty = torch.stack([F.softmax(z.float(), dim=1).max(dim=1).values for z in parts], dim=1)
        w = F.softmax(certainty / self.temperature, dim=1).to(logits.dtype)
        return dict(heads), total(w[:, k:k + 1] * z for k, z in enumerate(parts))


COMBINERS = {"entropy": EntropyWeighted, "boosted": Boosted, "class_mixing": ClassMixing, "heads_sum": HeadsSum,
             "certainty": CertaintyWeighted}


def build_combiner(n_classes: int, spec: dict, n_modalities: int = 2) -> nn.Module:
    options = {k: v for k, v in spec.items() if k != "name"}
    if spec.get("name") not in COMBINERS:
        raise ValueError(f"unknown combiner {spec.get('name')!r}; choose one of {sorted(COMBINERS)}")
    if spec["name"] == "boosted":
        options["n_modalities"] = n_modalities
    return COMBINERS[spec["name"]](n_classes, **options)
