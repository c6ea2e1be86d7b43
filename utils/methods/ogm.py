"""OGM and OGM-GE (Peng et al., CVPR 2022): on-the-fly gradient modulation.

Per step, s_m = sum over the batch of softmax(logits_m)[true class]. With ratio = s_a / s_v,
the dominant modality's encoder gradients are multiplied by 1 - tanh(alpha * relu(ratio - 1))
(ratio taken dominant over weak), the other encoder's are left as they are; OGM-GE then adds
Gaussian noise with the standard deviation of each modulated gradient (generalisation
enhancement). Active for epochs --modulation_starts to --modulation_ends, both included.
"""
import math

import torch

from .. import distributed
from .base import Method, encoder_params


def modulation_coefficients(logits_a, logits_v, labels, alpha: float):
    """(coeff_a, coeff_v): 1 for the weaker modality, 1 - tanh(alpha * relu(ratio - 1)) for the dominant one."""
    with torch.no_grad():
        scores = torch.stack([logits.float().softmax(1).gather(1, labels[:, None]).sum()
                              for logits in (logits_a, logits_v)])
        # Every process must scale its (already averaged) gradients alike: use the global batch's scores.
        score_a, score_v = distributed.all_reduce_sum(scores).tolist()
    if score_a > score_v:
        return 1 - math.tanh(alpha * max(score_a / max(score_v, 1e-12) - 1, 0.0)), 1.0
    return 1.0, 1 - math.tanh(alpha * max(score_v / max(score_a, 1e-12) - 1, 0.0))


class OGM(Method):
    name = "ogm"
    noise = False

    def before_step(self, model, out, labels, epoch):
        if not self.args.modulation_starts <= epoch <= self.args.modulation_ends:
            return {"coeff_a": 1.0, "coeff_v": 1.0}
        coeff_a, coeff_v = modulation_coefficients(out.logits_a, out.logits_v, labels, self.args.alpha)
        for modality, coeff in (("audio", coeff_a), ("visual", coeff_v)):
            if coeff == 1.0:
                continue
            for p in encoder_params(model, modality):
                if p.grad is None:
                    continue
                p.grad.mul_(coeff)
                if self.noise and p.grad.numel() > 1:
                    # Same draws on every process: all seed their generators alike each epoch.
                    p.grad.add_(torch.randn_like(p.grad) * (p.grad.std() + 1e-8))
        return {"coeff_a": coeff_a, "coeff_v": coeff_v}


class OGMGE(OGM):
    name = "ogm_ge"
    noise = True
