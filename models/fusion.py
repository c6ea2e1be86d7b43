"""Fusion modules over the modalities' encoder features, a dict {name: (B, d)} in the dataset's order. Each
returns (feat, logits): feat {name: the features the classifier scores}, and the fused logits; and exposes its
classifier split per modality.

Without MMCosine the uni-modal logits are feat_m @ W_m.T + b_m, with W_m, b_m from `classifier_weights()` /
`classifier_biases()`: for sum fusion each branch's own layer, for the concatenating fusions the column block
of fc_out and 1/M of its bias each, so the uni-modal logits sum to the fused ones exactly.
sum and concat take any number of modalities; film and gated are pairwise (exactly two, any two).
"""
from typing import Dict, Sequence

import torch
from torch import nn

from .encoders import FEATURE_DIM

PAIRWISE = ("film", "gated")


def total(tensors):
    """t_1 + t_2 + ... in order (never 0 + t_1: the sum of two is then exactly a + b)."""
    tensors = list(tensors)
    out = tensors[0]
    for t in tensors[1:]:
        out = out + t
    return out


class SumFusion(nn.Module):
    """logits = sum_m fc_m(f_m)."""

    def __init__(self, n_classes: int, names: Sequence[str], dim: int = FEATURE_DIM):
        super().__init__()
        self.names = tuple(names)
        self.fc = nn.ModuleDict({m: nn.Linear(dim, n_classes) for m in self.names})

    def forward(self, feats: Dict[str, torch.Tensor]):
        return feats, total(self.fc[m](feats[m]) for m in self.names)

    def classifier_weights(self):
        return {m: self.fc[m].weight for m in self.names}

    def classifier_biases(self):
        return {m: self.fc[m].bias for m in self.names}

    def classifier_grads(self):
        return {m: self.fc[m].weight.grad for m in self.names}

    def classifier_layer_biases(self):
        return [self.fc[m].bias for m in self.names]

    def classifier_layer_weights(self):
        """The weight tensors of the layers that give the fused logits (AGM's clipping test watches them)."""
        return [self.fc[m].weight for m in self.names]


class _ConcatHead(nn.Module):
    """Shared tail of concat / FiLM / gated: logits = fc_out([f_1'; ...; f_M'])."""

    def __init__(self, n_classes: int, names: Sequence[str], feat_dim: int):
        super().__init__()
        self.names = tuple(names)
        self.feat_dim = feat_dim
        self.fc_out = nn.Linear(len(self.names) * feat_dim, n_classes)

    def _classify(self, feats: Dict[str, torch.Tensor]):
        return feats, self.fc_out(torch.cat([feats[m] for m in self.names], dim=1))

    def _blocks(self, w):
        return {m: w[:, i * self.feat_dim:(i + 1) * self.feat_dim] for i, m in enumerate(self.names)}

    def classifier_weights(self):
        return self._blocks(self.fc_out.weight)

    def classifier_grads(self):
        """The gradients of classifier_weights(), or None each before a backward pass."""
        g = self.fc_out.weight.grad
        return {m: None for m in self.names} if g is None else self._blocks(g)

    def classifier_biases(self):
        b = self.fc_out.bias
        return {m: b / len(self.names) for m in self.names}

    def classifier_layer_biases(self):
        return [self.fc_out.bias]

    def classifier_layer_weights(self):
        return [self.fc_out.weight]


class ConcatFusion(_ConcatHead):
    def __init__(self, n_classes: int, names: Sequence[str], dim: int = FEATURE_DIM):
        super().__init__(n_classes, names, dim)

    def forward(self, feats):
        return self._classify(feats)


class _PairwiseHead(_ConcatHead):
    """A fusion defined for two modalities, each modulating the other (DESIGN.md)."""

    def __init__(self, n_classes: int, names: Sequence[str], dim: int, out_dim: int):
        if len(names) != 2:
            raise ValueError(f"this fusion is defined for exactly two modalities, not {len(names)}")
        super().__init__(n_classes, names, dim)
        self.fc = nn.ModuleDict({m: nn.Linear(dim, out_dim) for m in self.names})


class FiLMFusion(_PairwiseHead):
    """Symmetric FiLM: each modality produces (gamma, beta) that modulate the other."""

    def __init__(self, n_classes: int, names: Sequence[str], dim: int = FEATURE_DIM):
        super().__init__(n_classes, names, dim, 2 * dim)

    def forward(self, feats):
        first, second = self.names
        gamma_1, beta_1 = self.fc[first](feats[first]).chunk(2, dim=1)
        gamma_2, beta_2 = self.fc[second](feats[second]).chunk(2, dim=1)
        return self._classify({first: gamma_2 * feats[first] + beta_2, second: gamma_1 * feats[second] + beta_1})


class GatedFusion(_PairwiseHead):
    """Symmetric gating: each modality's projection gates the other's."""

    def __init__(self, n_classes: int, names: Sequence[str], dim: int = FEATURE_DIM):
        super().__init__(n_classes, names, dim, dim)

    def forward(self, feats):
        first, second = self.names
        h_1, h_2 = self.fc[first](feats[first]), self.fc[second](feats[second])
        return self._classify({first: torch.sigmoid(h_2) * h_1, second: torch.sigmoid(h_1) * h_2})


FUSIONS = {"sum": SumFusion, "concat": ConcatFusion, "film": FiLMFusion, "gated": GatedFusion}


class GeodesicMixup(nn.Module):
    """IPRM's fusion: the spherical interpolation (slerp) of the two modalities' unit features,
    mix = [sin(w_1 theta) x1/|x1| + sin(w_2 theta) x2/|x2|] / (sin theta + 1e-8), theta the angle between them,
    scored by one linear layer (the authors' head_mixup). The mixing weights are a buffer (so a checkpoint evaluates
    with the weights it trained to); a method may set `weights` ({name: (B,) or scalar}) for its training steps.
    The slerp is linear in its two terms, so each modality's term is its `feat` and the layer's weight scores both:
    the uni-modal logits (W term_m + b/2) sum to the fused ones, as for the other fusions."""

    def __init__(self, n_classes: int, names: Sequence[str], dim: int = FEATURE_DIM, eps: float = 1e-8):
        super().__init__()
        if len(names) != 2:
            raise ValueError(f"the geodesic mixup is defined for exactly two modalities, not {len(names)}")
        self.names, self.eps = tuple(names), eps
        self.fc_out = nn.Linear(dim, n_classes)
        self.register_buffer("mix", torch.full((2,), 0.5))  # the weights used where no method sets them
        self.weights = None

    def terms(self, feats: Dict[str, torch.Tensor], weights=None) -> Dict[str, torch.Tensor]:
        """Each modality's slerp term at `weights` ({name: weight}; default: the buffer's)."""
        first, second = self.names
        x1 = torch.nn.functional.normalize(feats[first], dim=1)
        x2 = torch.nn.functional.normalize(feats[second], dim=1)
        theta = torch.acos((x1 * x2).sum(1, keepdim=True).clamp(-1.0, 1.0))
        if weights is None:
            weights = self.weights if self.weights is not None else dict(zip(self.names, self.mix))
        scale = torch.sin(theta) + self.eps
        w1, w2 = (torch.as_tensor(weights[m], dtype=theta.dtype, device=theta.device).reshape(-1, 1)
                  for m in self.names)
        return {first: torch.sin(w1 * theta) * x1 / scale, second: torch.sin(w2 * theta) * x2 / scale}

    def forward(self, feats):
        terms = self.terms(feats)
        return terms, self.fc_out(total(terms.values()))

    def classifier_weights(self):
        return {m: self.fc_out.weight for m in self.names}

    def classifier_biases(self):
        return {m: self.fc_out.bias / len(self.names) for m in self.names}

    def classifier_grads(self):
        g = self.fc_out.weight.grad
        return {m: g for m in self.names}

    def classifier_layer_biases(self):
        return [self.fc_out.bias]

    def classifier_layer_weights(self):
        return [self.fc_out.weight]
