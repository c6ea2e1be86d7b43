"""Fusion modules over the modalities' encoder features, a dict {name: (B, d)} in the dataset's order. Each
returns (feat, logits): feat {name: the features the classifier scores}, and the fused logits; and exposes its
classifier split per modality.

Without MMCosine the uni-modal logits are feat_m @ W_m.T + b_m, with W_m, b_m from `classifier_weights()` /
`classifier_biases()`: for sum fusion each branch's own layer, for the concatenating fusions the column block
of fc_out and 1/M of its bias each, so the uni-modal logits sum to the fused ones exactly.
sum and concat take any number of modalities; film and gated are pairwise (exactly two, any two).
"""
from typing import Dict, Sequence, Union

import torch
from torch import nn

from .encoders import FEATURE_DIM

PAIRWISE = ("film", "gated")
Dims = Union[int, Dict[str, int]]  # the encoders' feature sizes: one for all, or per modality (image + text)


def per_modality(dim: Dims, names: Sequence[str]) -> Dict[str, int]:
    return {m: dim for m in names} if isinstance(dim, int) else {m: int(dim[m]) for m in names}


def common_dim(dim: Dims, names: Sequence[str], what: str) -> int:
    """The one feature size of every modality, for the fusions that mix them element by element."""
    sizes = per_modality(dim, names)
    if len(set(sizes.values())) != 1:
        raise ValueError(f"{what} needs features of one size, and the encoders give "
                         f"{', '.join(f'{m} {d}' for m, d in sizes.items())}: use encoders of one feature size "
                         "(main_Food.py: --text_dim 512), or sum / concat fusion")
    return next(iter(sizes.values()))


def total(tensors):
    """t_1 + t_2 + ... in order (never 0 + t_1: the sum of two is then exactly a + b)."""
    tensors = list(tensors)
    out = tensors[0]
    for t in tensors[1:]:
        out = out + t
    return out


class SumFusion(nn.Module):
    """logits = sum_m fc_m(f_m)."""

    def __init__(self, n_classes: int, names: Sequence[str], dim: Dims = FEATURE_DIM):
        super().__init__()
        self.names = tuple(names)
        self.fc = nn.ModuleDict({m: nn.Linear(d, n_classes) for m, d in per_modality(dim, self.names).items()})

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

    def __init__(self, n_classes: int, names: Sequence[str], feat_dim: Dims):
        super().__init__()
        self.names = tuple(names)
        self.dims = per_modality(feat_dim, self.names)
        sizes = set(self.dims.values())
        self.feat_dim = sizes.pop() if len(sizes) == 1 else None  # one size for all, or None (image + text)
        self.fc_out = nn.Linear(sum(self.dims.values()), n_classes)

    def _classify(self, feats: Dict[str, torch.Tensor]):
        return feats, self.fc_out(torch.cat([feats[m] for m in self.names], dim=1))

    def _blocks(self, w):
        blocks, start = {}, 0
        for m in self.names:
            blocks[m] = w[:, start:start + self.dims[m]]
            start += self.dims[m]
        return blocks

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
    def __init__(self, n_classes: int, names: Sequence[str], dim: Dims = FEATURE_DIM):
        super().__init__(n_classes, names, dim)

    def forward(self, feats):
        return self._classify(feats)


class _PairwiseHead(_ConcatHead):
    """A fusion defined for two modalities, each modulating the other (DESIGN.md)."""

    def __init__(self, n_classes: int, names: Sequence[str], dim: Dims, out_dim: int):
        if len(names) != 2:
            raise ValueError(f"this fusion is defined for exactly two modalities, not {len(names)}")
        dim = common_dim(dim, names, type(self).__name__)
        super().__init__(n_classes, names, dim)
        self.fc = nn.ModuleDict({m: nn.Linear(dim, out_dim) for m in self.names})


class FiLMFusion(_PairwiseHead):
    """Symmetric FiLM: each modality produces (gamma, beta) that modulate the other."""

    def __init__(self, n_classes: int, names: Sequence[str], dim: Dims = FEATURE_DIM):
        super().__init__(n_classes, names, dim, 2 * common_dim(dim, names, "FiLM fusion"))

    def forward(self, feats):
        first, second = self.names
        gamma_1, beta_1 = self.fc[first](feats[first]).chunk(2, dim=1)
        gamma_2, beta_2 = self.fc[second](feats[second]).chunk(2, dim=1)
        return self._classify({first: gamma_2 * feats[first] + beta_2, second: gamma_1 * feats[second] + beta_1})


class GatedFusion(_PairwiseHead):
    """Symmetric gating: each modality's projection gates the other's."""

    def __init__(self, n_classes: int, names: Sequence[str], dim: Dims = FEATURE_DIM):
        super().__init__(n_classes, names, dim, common_dim(dim, names, "gated fusion"))

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
    the uni-modal logits (W term_m + b/2) sum to the fused ones, as for the other fusions. Under MMCosine the fused
    logits are the cosine of the whole mix (cosine_logits) and each term's cosine is its modality's diagnostic."""

    def __init__(self, n_classes: int, names: Sequence[str], dim: Dims = FEATURE_DIM, eps: float = 1e-8):
        super().__init__()
        if len(names) != 2:
            raise ValueError(f"the geodesic mixup is defined for exactly two modalities, not {len(names)}")
        dim = common_dim(dim, names, "the geodesic mixup")
        self.names, self.eps = tuple(names), eps
        self.fc_out = nn.Linear(dim, n_classes)
        self.register_buffer("mix", torch.full((2,), 0.5))  # the weights used where no method sets them
        self.weights = None

    def terms(self, feats: Dict[str, torch.Tensor], weights=None) -> Dict[str, torch.Tensor]:
        """Each modality's slerp term at `weights` ({name: weight}; default: the buffer's)."""
        first, second = self.names
        x1 = torch.nn.functional.normalize(feats[first], dim=1)
        x2 = torch.nn.functional.normalize(feats[second], dim=1)
        # the angle in float32 even under autocast: acos's gradient grows without bound as the cosine nears 1
        theta = torch.acos((x1.float() * x2.float()).sum(1, keepdim=True).clamp(-1.0, 1.0)).to(x1.dtype)
        if weights is None:
            weights = self.weights if self.weights is not None else dict(zip(self.names, self.mix))
        scale = torch.sin(theta) + self.eps
        w1, w2 = (torch.as_tensor(weights[m], dtype=theta.dtype, device=theta.device).reshape(-1, 1)
                  for m in self.names)
        return {first: torch.sin(w1 * theta) * x1 / scale, second: torch.sin(w2 * theta) * x2 / scale}

    def forward(self, feats):
        terms = self.terms(feats)
        return terms, self.fc_out(total(terms.values()))

    def cosine_logits(self, terms: Dict[str, torch.Tensor], scaling: float) -> torch.Tensor:
        """Under MMCosine, the mix is scored as one vector, s * cos(mix, W_c): each term's own cosine would drop the
        mixing weights (a cosine ignores a positive factor), and with them what IPRM rebalances."""
        from .mmcosine import cosine_logits
        return cosine_logits(total(terms.values()), self.fc_out.weight, scaling)

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
