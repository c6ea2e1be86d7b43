"""OGM and OGM-GE (Peng et al., CVPR 2022): on-the-fly gradient modulation, as the authors'
OGM-GE_CVPR2022/main.py (train_epoch) does it.

Per step, s_m = sum over the batch of softmax(logits_m)[true class] and rho_v = s_v / s_a,
rho_a = 1 / rho_v. If rho_v > 1 the visual encoder is dominant and gets
k_v = 1 - tanh(alpha * relu(rho_v)) (paper Eq. 10), k_a = 1; otherwise (a tie included) the
audio encoder gets k_a = 1 - tanh(alpha * relu(rho_a)), k_v = 1. Only the 4-D gradients (the
convolution weights) of each encoder are touched: OGM multiplies them by k_m; OGM-GE replaces
each by k_m * g + N(0, std(g) + 1e-8), std taken before scaling, on both encoders (the weak
one's k is 1, so it gets the noise alone). Active for the epochs whose 0-based index (as in
the reference's loop) lies in --modulation_starts .. --modulation_ends, both included.

--ogm_coefficient shifted gives this project's former variant, k = 1 - tanh(alpha * relu(rho - 1)).
"""
import math

import torch

from .base import Method, encoder_params
from .scores import true_class_scores

COEFFICIENTS = {
    "paper": lambda alpha, rho: 1 - math.tanh(alpha * max(rho, 0.0)),        # authors' code = Eq. 10
    "shifted": lambda alpha, rho: 1 - math.tanh(alpha * max(rho - 1, 0.0)),  # our earlier reading
}


def modulation_coefficients(logits_a, logits_v, labels, alpha: float, rule: str = "paper"):
    """(coeff_a, coeff_v): the dominant modality's coefficient by `rule`, 1 for the other."""
    # Every process must scale its (already averaged) gradients alike: the global batch's scores.
    score_a, score_v = true_class_scores(labels, logits_a, logits_v)
    coefficient = COEFFICIENTS[rule]
    ratio_v = score_v / max(score_a, 1e-12)
    if ratio_v > 1:
        return 1.0, coefficient(alpha, ratio_v)
    return coefficient(alpha, score_a / max(score_v, 1e-12)), 1.0


def conv_weights(model, modality: str):
    """The parameters OGM modulates: the encoder's 4-D ones (convolution weights, not BatchNorm)."""
    return [p for p in encoder_params(model, modality) if p.grad is not None and p.grad.dim() == 4]


class OGM(Method):
    name = "ogm"
    noise = False
    default_window_end = 50  # OGM-GE's main.py: modulation_ends 50

    def before_step(self, model, out, labels, epoch):
        if not self.active(epoch):
            return {"coeff_a": 1.0, "coeff_v": 1.0}
        coeff_a, coeff_v = modulation_coefficients(out.logits_a, out.logits_v, labels, self.args.alpha,
                                                   self.args.ogm_coefficient)
        for modality, coeff in (("audio", coeff_a), ("visual", coeff_v)):
            for p in conv_weights(model, modality):
                if self.noise:
                    # Same draws on every process: all seed their generators alike each epoch.
                    noise = torch.randn_like(p.grad) * (p.grad.std() + 1e-8)
                    p.grad.mul_(coeff).add_(noise)
                elif coeff != 1.0:
                    p.grad.mul_(coeff)
        return {"coeff_a": coeff_a, "coeff_v": coeff_v}


class OGMGE(OGM):
    name = "ogm_ge"
    noise = True
