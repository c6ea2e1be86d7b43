"""MMPareto (Wei & Hu, ICML 2024), as the authors' MMPareto_ICML2024/code/MMPareto.py trains, for any
number of modalities: the paper's objective is the multimodal loss plus one uni-modal loss per modality, and
each encoder's conflict is between the multimodal loss and its own modality's (the code: audio and visual).

The model gets a separate linear head on each encoder's features (head_audio / head_video there).
Per step, with L_mm = CE(z) and L_m = CE(head_m(f_m)) for each modality m, each encoder m has the
gradient g_mm of L_mm and g_m of its own L_m, from separate backward passes. If
cos(g_mm, g_m) > 0 the two weigh (1/2, 1/2); otherwise the two-task min-norm weights (c, 1 - c),

    c = (g_m.g_m - g_mm.g_m) / (|g_mm|^2 + |g_m|^2 - 2 g_mm.g_m)   (0.999 / 0.001 at the ends, as MinNormSolver)

Then, parameter tensor by parameter tensor, g = 2 (w_mm g_mm + w_m g_m); where the gradient of
L_mm + sum_m L_m is longer, g is rescaled to its length; times gamma (1.5). The heads and the fusion
layer take the gradient of the summed loss.

--mmpareto_variant balancebenchmark gives BalanceBenchmark's MMPareto_trainer instead: it back-
propagates all three losses before reading the gradients, so both "per-loss" gradients are the
summed one, the cosine is always 1 and every encoder gradient becomes 2 * gamma (= 3) times the
summed gradient; its uni-modal losses use the fused head's slices, no separate heads. Its
published CREMA-D 79.97 comes from that.
"""
import torch
import torch.nn.functional as F

from models.fusion import total

from ..flag_types import NONNEGATIVE
from .base import Method, encoder_params


def min_norm_weights(g1: torch.Tensor, g2: torch.Tensor):
    """(c, 1 - c) minimising |c g1 + (1 - c) g2| over c in [0, 1], as MinNormSolver._min_norm_element_from2."""
    v11, v12, v22 = (g1 @ g1).item(), (g1 @ g2).item(), (g2 @ g2).item()
    if v12 >= v11:
        return 0.999, 0.001
    if v12 >= v22:
        return 0.001, 0.999
    c = -((v12 - v22) / (v11 + v22 - 2 * v12))
    return c, 1 - c


def pareto_weights(g_mm: torch.Tensor, g_uni: torch.Tensor):
    """(w_mm, w_uni, cosine): equal weights when the flattened gradients agree, min-norm ones when they conflict."""
    cosine = F.cosine_similarity(g_mm, g_uni, dim=0).item()
    if cosine > 0:
        return 0.5, 0.5, cosine
    return (*min_norm_weights(g_mm, g_uni), cosine)


def combine(g_mm, g_uni, g_sum, w_mm: float, w_uni: float, gamma: float) -> torch.Tensor:
    """One parameter tensor's new gradient: 2 (w_mm g_mm + w_uni g_uni), lengthened to |g_sum| if shorter, x gamma."""
    new = 2 * w_mm * g_mm + 2 * w_uni * g_uni
    ratio = g_sum.norm() / new.norm()
    return (ratio * new if ratio > 1 else new) * gamma


class MMPareto(Method):
    name = "mmpareto"

    @property
    def owns_backward(self):  # only the authors' variant takes several backward passes
        return self.args.mmpareto_variant == "authors"

    @classmethod
    def add_args(cls, group, modalities):
        group.add_argument("--mmpareto_gamma", type=NONNEGATIVE, default=1.5,
                           help="MMPareto: factor on the encoders' combined gradients (the authors' and "
                                "BalanceBenchmark's 1.5)")
        group.add_argument("--mmpareto_variant", choices=["authors", "balancebenchmark"], default="authors",
                           help="MMPareto: authors = per-loss gradients and separate uni-modal heads; balancebenchmark "
                                "= its trainer (encoder gradients 2 x gamma x the summed gradient, fused-head slices)")

    def configure_model(self, model):
        if self.args.mmpareto_variant == "authors":
            model.add_unimodal_heads()

    def losses(self, out, labels):
        """[L_mm, L_m for each modality in order]."""
        uni = out.heads if self.args.mmpareto_variant == "authors" else out.unimodal
        return [F.cross_entropy(logits.float(), labels) for logits in (out.logits, *(uni[m] for m in self.modalities))]

    def loss(self, out, labels, epoch):  # the balancebenchmark variant: one backward of the summed loss
        return total(self.losses(out, labels))

    def before_step(self, model, out, labels, epoch):  # the balancebenchmark variant
        factor = 2 * self.args.mmpareto_gamma
        for m in self.modalities:
            for p in encoder_params(model, m):
                if p.grad is not None:
                    p.grad.mul_(factor)
        return {**{f"mmpareto_cos_{m}": 1.0 for m in self.modalities},
                **{f"mmpareto_weight_mm_{m}": 0.5 for m in self.modalities}}

    def train_step(self, step):
        if self.args.mmpareto_variant != "authors":
            return super().train_step(step)
        raw = step.raw_model
        out = step.forward(raw=True)
        loss_mm, *loss_uni = self.losses(out, step.labels)
        step.check_finite(total([loss_mm, *loss_uni]))
        params = [p for p in raw.parameters() if p.requires_grad]
        summed = dict(zip(params, step.gradients(total([loss_mm, *loss_uni]), params)))
        logged = {}
        for m, loss_m in zip(self.modalities, loss_uni):
            enc = encoder_params(raw, m)
            g_mm, g_uni = step.gradients(loss_mm, enc), step.gradients(loss_m, enc)
            flat = lambda grads: torch.cat([g.reshape(-1) for g in grads])  # noqa: E731
            w_mm, w_uni, cosine = pareto_weights(flat(g_mm), flat(g_uni))
            for p, a, b in zip(enc, g_mm, g_uni):
                summed[p] = combine(a, b, summed[p], w_mm, w_uni, self.args.mmpareto_gamma)
            logged.update({f"mmpareto_cos_{m}": cosine, f"mmpareto_weight_mm_{m}": w_mm,
                           f"mmpareto_conflict_{m}": float(cosine <= 0)})
        step.step_with(summed)
        return out, logged
