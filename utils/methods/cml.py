"""CML, Calibrating Multimodal Learning (Ma et al., ICML 2023), as BalanceBenchmark's CML_trainer
has it. Each epoch one modality, drawn at random, is the one removed; the prediction without it,
z_p = z - (z_m - b_m) (its weights' contribution taken out, the bias kept), must not be more
confident than the full one:

    loss = (CE(z) + CE(z_p)) / 2 + lambda * penalty,
    batch  (BalanceBenchmark, the default):  penalty = max(0, sum_i (conf_p,i - conf_s,i))
    sample (the authors' cpm/CPM_Nets.py rank_loss, "trick 1"):
                                             penalty = sum_i relu(conf_p,i - conf_s,i) * [not (only z_p is right)]

conf = the largest softmax probability. The authors' code is for tabular multi-view data (CPM-Nets,
MIWAE), where views are dropped per sample; BalanceBenchmark's trainer is the audio-visual port the
CML numbers in this line of work come from, so its batch hinge is the default (--cml_penalty sample
gives the authors' per-sample one). Under MMCosine the modality's logits carry no bias: z_p = z - z_m.
Active in the 0-based epochs --modulation_starts .. --modulation_ends (BalanceBenchmark: 0..80);
plain cross-entropy outside.
"""
import torch
import torch.nn.functional as F

from ..flag_types import NONNEGATIVE
from ..seed import epoch_seed
from .base import Method

MODALITIES = ("audio", "visual")


def confidence_penalty(logits, partial, labels, kind: str = "batch"):
    """BalanceBenchmark's hinge on the batch sum ("batch") or the authors' per-sample hinge ("sample"), where a
    sample that only the partial prediction gets right is exempt."""
    prob, prob_p = logits.float().softmax(1), partial.float().softmax(1)
    (conf, pred), (conf_p, pred_p) = prob.max(1), prob_p.max(1)
    if kind == "batch":
        return torch.clamp((conf_p - conf).sum(), min=0.0)
    counted = ~((pred_p == labels) & (pred != labels))  # the authors' "trick 1"
    return F.relu((conf_p - conf) * counted).sum()


def cml_loss(logits, partial, labels, lam: float, kind: str = "batch"):
    """(loss, penalty) from the full and the partial logits."""
    penalty = confidence_penalty(logits, partial, labels, kind)
    ce = (F.cross_entropy(logits.float(), labels) + F.cross_entropy(partial.float(), labels)) / 2
    return ce + lam * penalty, penalty


class CML(Method):
    name = "cml"
    single_process_only = "its penalty is a sum over the batch, which each process would take over its part only"
    default_window_end = 80  # BalanceBenchmark's trainer_config

    @classmethod
    def add_args(cls, group):
        group.add_argument("--cml_lambda", type=NONNEGATIVE, default=0.1,
                           help="CML: weight of the confidence penalty (BalanceBenchmark's lam)")
        group.add_argument("--cml_penalty", choices=["batch", "sample"], default="batch",
                           help="CML: batch = BalanceBenchmark's hinge on the batch sum of confidence gaps; sample = "
                                "the authors' per-sample hinge, samples only the partial prediction gets right exempt")

    def __init__(self, args):
        super().__init__(args)
        self.removed = "visual"

    def configure_model(self, model):
        self.model = model  # the bias that stays in the partial prediction

    def start_epoch(self, epoch, model, optimizer):
        # BalanceBenchmark shuffles the modality list each epoch and removes its last one; the same on every process.
        draw = torch.randint(2, (1,), generator=torch.Generator().manual_seed(epoch_seed(self.args.random_seed, epoch)))
        self.removed = MODALITIES[int(draw)]
        return {"cml_removed_audio": float(self.removed == "audio")}

    def partial_logits(self, out):
        index = MODALITIES.index(self.removed)
        removed = (out.logits_a, out.logits_v)[index]
        if self.model.mmcosine:
            return out.logits - removed
        return out.logits - (removed - self.model.fusion.classifier_biases()[index])

    def loss(self, out, labels, epoch):
        if not self.active(epoch):
            self.logged = {"cml_hinge": 0.0}
            return super().loss(out, labels, epoch)
        total, penalty = cml_loss(out.logits, self.partial_logits(out), labels, self.args.cml_lambda,
                                  self.args.cml_penalty)
        self.logged = {"cml_hinge": penalty.item()}
        return total
