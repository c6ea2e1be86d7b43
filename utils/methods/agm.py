"""AGM, Adaptive Gradient Modulation (Li et al., ICCV 2023), as the authors' AGM_ICCV2023 trains
CREMA-D (model/CREMAD_net.py GradMod, run/CREMAD_main.py), in their direction, for any number of
modalities as their UR-Funny code does three (model/URFunny_net.py, run/URFunny_main.py).

Besides the normal pass f(all), the model runs in eval mode (with gradients, as there) once for every
non-empty proper subset S of the modalities, the others' inputs zeroed: v(S) = f(S). Each modality's
mono-modal output is its Shapley value over these coalitions with the empty coalition scoring 0,

    m_m = sum over S not holding m of |S|! (M - |S| - 1)! / M! * (v(S + m) - v(S)),   v(empty) = 0,

so the m_m sum to f(all). For two modalities, m_a = (f(A,V) - f(0,V) + f(A,0)) / 2; for three it is the
authors' Modality_Text / Audio / Visual outputs (the Shapley value plus v(empty) / 3, their m_*_out). The loss is
CE(sum_m m_m), and the gradient flowing back through m_m is multiplied by coeff_m. With the batch scores
s_m = mean -log p(m_m)[true class] (p clamped at 1e-8) and their running means T_m over all steps so far
(before this step's update), and d_m(x) = mean over the other modalities k of (x_k - x_m),

    coeff_m = exp(alpha * min(exp(d_m(T)) - exp(d_m(s)), 10))

(two modalities: coeff_a = exp(alpha * min(exp(T_v - T_a) - exp(s_v - s_a), 10)); three: the authors'
exp((mean - x_m) * 3/2)). A modality whose loss is now lower, relative to the others, than on average gets a
smaller coefficient. BalanceBenchmark's AGM_trainer flips this sign (and drops the empty-coalition terms); we
follow the authors. The cap 10 is their CREMA-D one (their UR-Funny script caps at 7). The authors' CREMA-D
setting modulates in every epoch (alpha 1.5, 1,500 epochs).

The coefficients reach e^15 (alpha 1.5 times the cap 10), so the authors clip (run/CREMAD_main.py:233-238):
after the backward pass, if any entry of the fusion layer's weight gradient (their fc_out.weight) lies
outside [-1, 1], every gradient is scaled as clip_grad_norm_(model.parameters(), max_norm=1) scales it.
--agm_clip sets that bound (BalanceBenchmark's AGM_trainer: 5; 0: no clipping); the fusion layer is
fc_out for concat / FiLM / gated fusion and every branch's layer for sum fusion.
"""
import itertools
import math
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F

from models.fusion import total

from ..flag_types import NONNEGATIVE
from .base import Method
from .scores import global_mean

CAP = 10  # the authors' CREMA-D bound on the exponent's argument


class ScaleGradient(torch.autograd.Function):
    """Identity forward; the gradient times `scale` backward (the authors' full backward hooks)."""

    @staticmethod
    def forward(ctx, x, scale: float):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale, None


def coalitions(modalities: Sequence[str]) -> List[Tuple[str, ...]]:
    """The non-empty proper subsets of the modalities, in the order their zeroed passes run (largest first;
    for two modalities: the first alone, then the second alone)."""
    return [kept for size in range(len(modalities) - 1, 0, -1) for kept in itertools.combinations(modalities, size)]


def shapley_outputs(full: torch.Tensor, partial: Dict[Tuple[str, ...], torch.Tensor],
                    modalities: Sequence[str]) -> Dict[str, torch.Tensor]:
    """{m: m_m} from f(all) and `partial` {kept subset: f(subset)}, the empty coalition scoring 0."""
    n = len(modalities)
    value = dict(partial)
    value[tuple(modalities)] = full

    def weight(size):
        return math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)

    outputs = {}
    for m in modalities:
        others = [k for k in modalities if k != m]
        terms = []
        for size in range(n - 1, -1, -1):
            for held in itertools.combinations(others, size):
                with_m = tuple(k for k in modalities if k in held or k == m)
                gain = value[with_m] - value[held] if held else value[with_m]
                terms.append(weight(size) * gain)
        outputs[m] = total(terms)
    return outputs


def batch_score(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per sample -log p[true class], p clamped at 1e-8 as the authors' loop does."""
    p = logits.float().softmax(1).gather(1, labels[:, None])[:, 0]
    return -torch.log(p.clamp(min=1e-8))


def clip_like_the_authors(grads, watched, bound: float):
    """(gradients, whether clipped): all of `grads` (a list) scaled by min(1, bound / (total norm + 1e-6)), as
    torch.nn.utils.clip_grad_norm_(max_norm=bound) does, when an entry of a `watched` gradient lies outside
    [-bound, bound]; untouched otherwise, or when bound is 0."""
    if bound <= 0 or not any(bool((g.abs() > bound).any()) for g in watched):
        return grads, False
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.detach()) for g in grads]))
    factor = torch.clamp(bound / (norm + 1e-6), max=1.0)
    return [g * factor.to(g.dtype) for g in grads], True


def mean_gap(values: Dict[str, float], m: str) -> float:
    """Mean over the other modalities k of values[k] - values[m] (for two: the other's minus m's)."""
    others = [values[k] - values[m] for k in values if k != m]
    return total(others) / len(others)


def agm_coefficients(scores: Dict[str, float], means: Dict[str, float], alpha: float) -> Dict[str, float]:
    """{m: coeff_m} from this batch's scores and the running means before it."""
    return {m: math.exp(alpha * min(math.exp(mean_gap(means, m)) - math.exp(mean_gap(scores, m)), CAP))
            for m in scores}


class AGM(Method):
    name = "agm"
    owns_backward = True

    @classmethod
    def add_args(cls, group, modalities):
        group.add_argument("--agm_alpha", type=NONNEGATIVE, default=1.5,
                           help="AGM: modulation strength (the authors' answer for CREMA-D: 1.5)")
        group.add_argument("--agm_clip", type=NONNEGATIVE, default=1.0, metavar="BOUND",
                           help="AGM: when an entry of the fusion layer's weight gradient exceeds BOUND in size, clip "
                                "the norm of all gradients to BOUND (the authors: 1; BalanceBenchmark: 5; 0: never)")

    def __init__(self, args, *context):
        super().__init__(args, *context)
        self.running = {**{m: 0.0 for m in self.modalities}, "steps": 0}  # T_m, and the steps they average

    def train_step(self, step):
        raw = step.raw_model
        out = step.forward(raw=True)
        raw.eval()  # the zeroed passes run in eval mode, with gradients, as GradMod.forward
        try:
            partial = {}
            for kept in coalitions(self.modalities):
                zeroed = {m: torch.zeros_like(step.inputs[m]) for m in self.modalities if m not in kept}
                partial[kept] = step.forward(zeroed, raw=True).logits.float()
        finally:
            raw.train()
        mono = shapley_outputs(out.logits.float(), partial, self.modalities)
        scores = {m: global_mean(batch_score(mono[m], step.labels)) for m in self.modalities}
        coeffs = agm_coefficients(scores, {m: self.running[m] for m in self.modalities}, self.args.agm_alpha)
        n = self.running["steps"] + 1
        self.running.update({m: self.running[m] * (n - 1) / n + scores[m] / n for m in self.modalities}, steps=n)
        loss = F.cross_entropy(total(ScaleGradient.apply(mono[m], coeffs[m]) for m in self.modalities), step.labels)
        step.check_finite(loss)
        params = [p for p in raw.parameters() if p.requires_grad]
        grads = step.gradients(loss, params, retain_graph=False)
        index = {id(p): i for i, p in enumerate(params)}
        watched = [grads[index[id(w)]] for w in raw.fusion.classifier_layer_weights() if id(w) in index]
        grads, clipped = clip_like_the_authors(grads, watched, self.args.agm_clip)
        step.step_with(dict(zip(params, grads)))
        logged = {f"agm_coeff_{self.tags[m]}": coeffs[m] for m in self.modalities}
        logged.update({f"agm_score_{self.tags[m]}": scores[m] for m in self.modalities})
        logged["agm_clipped"] = float(clipped)
        return out, logged

    def state_dict(self):
        return {"running": dict(self.running)}

    def load_state_dict(self, state):
        self.running.update(state.get("running", {}))
