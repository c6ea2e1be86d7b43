"""MBSD (Liu et al., WSDM 2023; modality-balanced self-distillation) as BalanceBenchmark's
MBSD_trainer has it (the paper has no public code): besides the fused and both uni-modal
cross-entropies, each sample where either modality is right is pulled towards agreement,
weighted by the gap between the two true-class probabilities,

    w_i  = |p_a,i(y) - p_v,i(y)| if either uni-modal prediction is right, else 0
    RS_i = mean over classes of (z_a,i - z_v,i)^2
    K_i  = F.kl_div(p_s, p_w) = p_w * (log p_w - p_s),  p_s / p_w the larger / smaller true-class probability
    loss = CE(z) + CE(z_a) + CE(z_v) + mean_i w_i RS_i + mean_i w_i K_i.

K_i takes the probabilities themselves where kl_div expects log-probabilities, as BalanceBenchmark
does; it is therefore not a KL divergence. Gradients flow through w, p_s and p_w as there.
Active in the 0-based epochs --modulation_starts .. --modulation_ends (BalanceBenchmark: 0..80); plain
cross-entropy outside.

Defined for two modalities (the paper's image and text; here the dataset's first and second, a and v above);
other counts are refused. BalanceBenchmark's three-modality branch (pairwise terms averaged, RS on
probabilities instead of logits) is its own extension, not the paper's.
"""
import torch
import torch.nn.functional as F

from .base import Method
from .scores import global_mean


def mbsd_loss(logits, logits_a, logits_v, labels):
    """(total loss, per-sample weights w) on one batch."""
    logits, logits_a, logits_v = logits.float(), logits_a.float(), logits_v.float()
    prob_a, prob_v = logits_a.softmax(1), logits_v.softmax(1)
    true_a, true_v = prob_a.gather(1, labels[:, None])[:, 0], prob_v.gather(1, labels[:, None])[:, 0]
    either_right = (prob_a.argmax(1) == labels) | (prob_v.argmax(1) == labels)
    strong, weak = torch.maximum(true_a, true_v), torch.minimum(true_a, true_v)
    weight = torch.where(either_right, strong - weak, torch.zeros_like(strong))
    agreement = ((logits_a - logits_v) ** 2).mean(1)
    pseudo_kl = F.kl_div(strong, weak, reduction="none")
    total = (F.cross_entropy(logits, labels) + F.cross_entropy(logits_a, labels) + F.cross_entropy(logits_v, labels)
             + (weight * agreement).mean() + (weight * pseudo_kl).mean())
    return total, weight


class MBSD(Method):
    name = "mbsd"
    default_window_end = 80  # BalanceBenchmark's trainer_config
    n_modalities = 2  # a pair's agreement, weighted by the gap between its two true-class probabilities

    def loss(self, out, labels, epoch):
        if not self.active(epoch):
            self.logged = {"mbsd_weight": 0.0}
            return super().loss(out, labels, epoch)
        first, second = self.modalities
        total, weight = mbsd_loss(out.logits, out.unimodal[first], out.unimodal[second], labels)
        self.logged = {"mbsd_weight": global_mean(weight)}
        return total
