"""Fusion modules. Each returns (feat_a, feat_v, logits) where feat_* are the
features the classifier sees, and exposes its classifier split per modality.

Without MMCosine the uni-modal logits are feat_m @ W_m.T + b_m, with
(W_a, b_a), (W_v, b_v) from `classifier_weights()` / `classifier_biases()`:
for sum fusion each branch's own layer, for the concatenating fusions the
column halves of fc_out and half its bias each, so logits_a + logits_v
equals the fused logits exactly.
"""
import torch
from torch import nn

from .encoders import FEATURE_DIM


class SumFusion(nn.Module):
    """logits = fc_a(a) + fc_v(v)."""

    def __init__(self, n_classes: int, dim: int = FEATURE_DIM):
        super().__init__()
        self.fc_a = nn.Linear(dim, n_classes)
        self.fc_v = nn.Linear(dim, n_classes)

    def forward(self, a, v):
        return a, v, self.fc_a(a) + self.fc_v(v)

    def classifier_weights(self):
        return self.fc_a.weight, self.fc_v.weight

    def classifier_biases(self):
        return self.fc_a.bias, self.fc_v.bias

    def classifier_grads(self):
        return self.fc_a.weight.grad, self.fc_v.weight.grad

    def classifier_layer_biases(self):
        return [self.fc_a.bias, self.fc_v.bias]

    def classifier_layer_weights(self):
        """The weight tensors of the layers that give the fused logits (AGM's clipping test watches them)."""
        return [self.fc_a.weight, self.fc_v.weight]


class _ConcatHead(nn.Module):
    """Shared tail of concat / FiLM / gated: logits = fc_out([a'; v'])."""

    def __init__(self, n_classes: int, feat_dim: int):
        super().__init__()
        self.feat_dim = feat_dim
        self.fc_out = nn.Linear(2 * feat_dim, n_classes)

    def _classify(self, a, v):
        return a, v, self.fc_out(torch.cat((a, v), dim=1))

    def classifier_weights(self):
        w = self.fc_out.weight
        return w[:, : self.feat_dim], w[:, self.feat_dim:]

    def classifier_grads(self):
        """The gradients of classifier_weights(), or (None, None) before a backward pass."""
        g = self.fc_out.weight.grad
        return (None, None) if g is None else (g[:, : self.feat_dim], g[:, self.feat_dim:])

    def classifier_biases(self):
        b = self.fc_out.bias
        return b / 2, b / 2

    def classifier_layer_biases(self):
        return [self.fc_out.bias]

    def classifier_layer_weights(self):
        return [self.fc_out.weight]


class ConcatFusion(_ConcatHead):
    def __init__(self, n_classes: int, dim: int = FEATURE_DIM):
        super().__init__(n_classes, dim)

    def forward(self, a, v):
        return self._classify(a, v)


class FiLMFusion(_ConcatHead):
    """Symmetric FiLM: each modality produces (gamma, beta) that modulate the other."""

    def __init__(self, n_classes: int, dim: int = FEATURE_DIM):
        super().__init__(n_classes, dim)
        self.fc_a = nn.Linear(dim, 2 * dim)
        self.fc_v = nn.Linear(dim, 2 * dim)

    def forward(self, a, v):
        gamma_a, beta_a = self.fc_a(a).chunk(2, dim=1)
        gamma_v, beta_v = self.fc_v(v).chunk(2, dim=1)
        return self._classify(gamma_v * a + beta_v, gamma_a * v + beta_a)


class GatedFusion(_ConcatHead):
    """Symmetric gating: each modality's projection gates the other's."""

    def __init__(self, n_classes: int, dim: int = FEATURE_DIM):
        super().__init__(n_classes, dim)
        self.fc_a = nn.Linear(dim, dim)
        self.fc_v = nn.Linear(dim, dim)

    def forward(self, a, v):
        h_a, h_v = self.fc_a(a), self.fc_v(v)
        return self._classify(torch.sigmoid(h_v) * h_a, torch.sigmoid(h_a) * h_v)


FUSIONS = {"sum": SumFusion, "concat": ConcatFusion, "film": FiLMFusion, "gated": GatedFusion}
