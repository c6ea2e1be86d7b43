"""AGM, Adaptive Gradient Modulation (Li et al., ICCV 2023), as the authors' AGM_ICCV2023 trains
CREMA-D (model/CREMAD_net.py GradMod, run/CREMAD_main.py), in their direction.

Besides the normal pass f(A, V), the model runs in eval mode with the visual input zeroed, f(A, 0),
and with the audio input zeroed, f(0, V) (with gradients, as there). The Shapley mono-modal outputs

    m_a = (f(A,V) - f(0,V) + f(A,0)) / 2,     m_v = (f(A,V) - f(A,0) + f(0,V)) / 2

sum to f(A, V); the loss is CE(m_a + m_v), and the gradient flowing back through m_a is multiplied
by coeff_a, through m_v by coeff_v. With the batch scores s_m = mean -log p(m_m)[true class]
(p clamped at 1e-8) and their running means T_m over all steps so far (before this step's update),

    coeff_a = exp(alpha * min(exp(T_v - T_a) - exp(s_v - s_a), 10)),
    coeff_v = exp(alpha * min(exp(T_a - T_v) - exp(s_a - s_v), 10)).

A modality whose loss is now lower, relative to the other, than on average gets a smaller
coefficient. BalanceBenchmark's AGM_trainer flips this sign (and drops the f(0,0) terms); we follow
the authors. The authors' CREMA-D setting modulates in every epoch (alpha 1.5, 1,500 epochs).

The coefficients reach e^15 (alpha 1.5 times the cap 10), so the authors clip (run/CREMAD_main.py:233-238):
after the backward pass, if any entry of the fusion layer's weight gradient (their fc_out.weight) lies
outside [-1, 1], every gradient is scaled as clip_grad_norm_(model.parameters(), max_norm=1) scales it.
--agm_clip sets that bound (BalanceBenchmark's AGM_trainer: 5; 0: no clipping); the fusion layer is
fc_out for concat / FiLM / gated fusion and both fc_a and fc_v for sum fusion.
"""
import math

import torch
import torch.nn.functional as F

from ..flag_types import NONNEGATIVE
from .base import Method
from .scores import global_mean


class ScaleGradient(torch.autograd.Function):
    """Identity forward; the gradient times `scale` backward (the authors' full backward hooks)."""

    @staticmethod
    def forward(ctx, x, scale: float):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale, None


def shapley_outputs(full, no_visual, no_audio):
    """(m_a, m_v) from f(A,V), f(A,0), f(0,V)."""
    return 0.5 * (full - no_audio + no_visual), 0.5 * (full - no_visual + no_audio)


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
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.detach()) for g in grads]))
    factor = torch.clamp(bound / (total + 1e-6), max=1.0)
    return [g * factor.to(g.dtype) for g in grads], True


def agm_coefficients(score_a: float, score_v: float, mean_a: float, mean_v: float, alpha: float):
    coeff_a = math.exp(alpha * min(math.exp(mean_v - mean_a) - math.exp(score_v - score_a), 10))
    coeff_v = math.exp(alpha * min(math.exp(mean_a - mean_v) - math.exp(score_a - score_v), 10))
    return coeff_a, coeff_v


class AGM(Method):
    name = "agm"
    owns_backward = True

    @classmethod
    def add_args(cls, group):
        group.add_argument("--agm_alpha", type=NONNEGATIVE, default=1.5,
                           help="AGM: modulation strength (the authors' answer for CREMA-D: 1.5)")
        group.add_argument("--agm_clip", type=NONNEGATIVE, default=1.0, metavar="BOUND",
                           help="AGM: when an entry of the fusion layer's weight gradient exceeds BOUND in size, clip "
                                "the norm of all gradients to BOUND (the authors: 1; BalanceBenchmark: 5; 0: never)")

    def __init__(self, args):
        super().__init__(args)
        self.running = {"audio": 0.0, "visual": 0.0, "steps": 0}

    def train_step(self, step):
        raw = step.raw_model
        out = step.forward(raw=True)
        raw.eval()  # the zeroed passes run in eval mode, with gradients, as GradMod.forward
        try:
            no_visual = step.forward(visual=torch.zeros_like(step.visual), raw=True).logits
            no_audio = step.forward(audio=torch.zeros_like(step.audio), raw=True).logits
        finally:
            raw.train()
        m_a, m_v = shapley_outputs(out.logits.float(), no_visual.float(), no_audio.float())
        score_a, score_v = global_mean(batch_score(m_a, step.labels)), global_mean(batch_score(m_v, step.labels))
        coeff_a, coeff_v = agm_coefficients(score_a, score_v, self.running["audio"], self.running["visual"],
                                            self.args.agm_alpha)
        n = self.running["steps"] + 1
        self.running.update(audio=self.running["audio"] * (n - 1) / n + score_a / n,
                            visual=self.running["visual"] * (n - 1) / n + score_v / n, steps=n)
        loss = F.cross_entropy(ScaleGradient.apply(m_a, coeff_a) + ScaleGradient.apply(m_v, coeff_v), step.labels)
        step.check_finite(loss)
        params = [p for p in raw.parameters() if p.requires_grad]
        grads = step.gradients(loss, params, retain_graph=False)
        index = {id(p): i for i, p in enumerate(params)}
        watched = [grads[index[id(w)]] for w in raw.fusion.classifier_layer_weights() if id(w) in index]
        grads, clipped = clip_like_the_authors(grads, watched, self.args.agm_clip)
        step.step_with(dict(zip(params, grads)))
        return out, {"agm_coeff_a": coeff_a, "agm_coeff_v": coeff_v, "agm_score_a": score_a, "agm_score_v": score_v,
                     "agm_clipped": float(clipped)}

    def state_dict(self):
        return {"running": dict(self.running)}

    def load_state_dict(self, state):
        self.running.update(state.get("running", {}))
