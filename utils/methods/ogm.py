"""OGM and OGM-GE (Peng et al., CVPR 2022): on-the-fly gradient modulation, as the authors'
OGM-GE_CVPR2022/main.py (train_epoch) does it, for the dataset's two modalities (first, second in its order;
audio and visual on the audio-visual scripts).

Per step, s_m = sum over the batch of softmax(logits_m)[true class] and rho_2 = s_2 / s_1,
rho_1 = 1 / rho_2. If rho_2 > 1 the second modality's encoder is dominant and gets
k_2 = 1 - tanh(alpha * relu(rho_2)) (paper Eq. 10), k_1 = 1; otherwise (a tie included) the
first modality's encoder gets k_1 = 1 - tanh(alpha * relu(rho_1)), k_2 = 1. Only the 4-D gradients (the
convolution weights) of each encoder are touched: OGM multiplies them by k_m; OGM-GE replaces
each by k_m * g + N(0, std(g) + 1e-8), std taken before scaling, on both encoders (the weak
one's k is 1, so it gets the noise alone). Active for the epochs whose 0-based index (as in
the reference's loop) lies in --modulation_starts .. --modulation_ends, both included.

Pairwise: the authors' code (the CVPR release, and the TPAMI 2024 journal code BML_TPAMI2024/code/main.py)
compares two modalities. BalanceBenchmark's three-modality variant (ratio to the lowest score, with scores of
cos(logits) over correctly classified samples) is not the authors', and we could not check the journal
paper's text for a rule of its own, so a dataset with another number of modalities is refused.

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


def modulation_coefficients(logits_first, logits_second, labels, alpha: float, rule: str = "paper"):
    """(coeff of the first modality, coeff of the second): the dominant one's by `rule`, 1 for the other; a
    tie modulates the first (the reference's `else` branch, audio on the audio-visual sets)."""
    # Every process must scale its (already averaged) gradients alike: the global batch's scores.
    score_1, score_2 = true_class_scores(labels, logits_first, logits_second)
    coefficient = COEFFICIENTS[rule]
    ratio_2 = score_2 / max(score_1, 1e-12)
    if ratio_2 > 1:
        return 1.0, coefficient(alpha, ratio_2)
    return coefficient(alpha, score_1 / max(score_2, 1e-12)), 1.0


def conv_weights(model, modality: str):
    """The parameters OGM modulates: the encoder's 4-D ones (convolution weights, not BatchNorm)."""
    return [p for p in encoder_params(model, modality) if p.grad is not None and p.grad.dim() == 4]


class OGM(Method):
    name = "ogm"
    noise = False
    default_window_end = 50  # OGM-GE's main.py: modulation_ends 50
    n_modalities = 2

    def before_step(self, model, out, labels, epoch):
        keys = {m: f"coeff_{self.tags[m]}" for m in self.modalities}
        if not self.active(epoch):
            return {keys[m]: 1.0 for m in self.modalities}
        first, second = self.modalities
        coeffs = dict(zip(self.modalities, modulation_coefficients(out.unimodal[first], out.unimodal[second], labels,
                                                                   self.args.alpha, self.args.ogm_coefficient)))
        for modality in self.modalities:
            coeff = coeffs[modality]
            for p in conv_weights(model, modality):
                if self.noise:
                    # Same draws on every process: all seed their generators alike each epoch.
                    noise = torch.randn_like(p.grad) * (p.grad.std() + 1e-8)
                    p.grad.mul_(coeff).add_(noise)
                elif coeff != 1.0:
                    p.grad.mul_(coeff)
        return {keys[m]: coeffs[m] for m in self.modalities}


class OGMGE(OGM):
    name = "ogm_ge"
    noise = True
