"""CML, Calibrating Multimodal Learning (Ma et al., ICML 2023), as BalanceBenchmark's CML_trainer
has it, for any number of modalities (the paper's rule holds for any two sets of modalities, one inside the
other: the prediction from fewer must not be more confident; BalanceBenchmark's trainer runs two or three).
Each epoch fixes a random order of removal; the modalities are taken out one after another, M - 1 of them.
With z_0 = z and removing modality m_i from z_(i-1),

    z_i = z_(i-1) - (z_(m_i) - b_(m_i))      (its weights' contribution taken out, its share of the bias kept)

each partial prediction must not be more confident than the one before it:

    loss = (CE(z_0) + CE(z_1) + ... + CE(z_(M-1))) / M + lambda * sum_i penalty(z_(i-1), z_i),
    batch  (BalanceBenchmark, the default):  penalty = max(0, sum_n (conf_i,n - conf_(i-1),n))
    sample (the authors' cpm/CPM_Nets.py rank_loss, "trick 1"):
                                             penalty = sum_n relu(conf_i,n - conf_(i-1),n) * [not (only z_i is right)]

(two modalities: (CE(z) + CE(z_p)) / 2 + lambda * penalty(z, z_p), one modality removed). conf = the largest
softmax probability. The authors' code is for tabular multi-view data (CPM-Nets, MIWAE), where views are
dropped per sample; BalanceBenchmark's trainer is the audio-visual port the CML numbers in this line of work
come from, so its batch hinge is the default (--cml_penalty sample gives the authors' per-sample one). Under
MMCosine the modality's logits carry no bias: z_i = z_(i-1) - z_(m_i). Active in the 0-based epochs
--modulation_starts .. --modulation_ends (BalanceBenchmark: 0..80); plain cross-entropy outside.
"""
from typing import List, Sequence

import torch
import torch.nn.functional as F

from models.fusion import total

from ..flag_types import NONNEGATIVE
from ..seed import epoch_seed
from .base import Method


def confidence_penalty(logits, partial, labels, kind: str = "batch"):
    """BalanceBenchmark's hinge on the batch sum ("batch") or the authors' per-sample hinge ("sample"), where a
    sample that only the partial prediction gets right is exempt."""
    prob, prob_p = logits.float().softmax(1), partial.float().softmax(1)
    (conf, pred), (conf_p, pred_p) = prob.max(1), prob_p.max(1)
    if kind == "batch":
        return torch.clamp((conf_p - conf).sum(), min=0.0)
    counted = ~((pred_p == labels) & (pred != labels))  # the authors' "trick 1"
    return F.relu((conf_p - conf) * counted).sum()


def cml_loss(logits, partials: Sequence[torch.Tensor], labels, lam: float, kind: str = "batch"):
    """(loss, penalty) from the full logits and the successive partial ones (one for two modalities)."""
    penalties, before = [], logits
    for partial in partials:
        penalties.append(confidence_penalty(before, partial, labels, kind))
        before = partial
    penalty = total(penalties)
    ce = total(F.cross_entropy(x.float(), labels) for x in (logits, *partials)) / (len(partials) + 1)
    return ce + lam * penalty, penalty


class CML(Method):
    name = "cml"
    single_process_only = "its penalty is a sum over the batch, which each process would take over its part only"
    default_window_end = 80  # BalanceBenchmark's trainer_config

    @classmethod
    def add_args(cls, group, modalities):
        group.add_argument("--cml_lambda", type=NONNEGATIVE, default=0.1,
                           help="CML: weight of the confidence penalty (BalanceBenchmark's lam)")
        group.add_argument("--cml_penalty", choices=["batch", "sample"], default="batch",
                           help="CML: batch = BalanceBenchmark's hinge on the batch sum of confidence gaps; sample = "
                                "the authors' per-sample hinge, samples only the partial prediction gets right exempt")

    def __init__(self, args, *context):
        super().__init__(args, *context)
        self.removed = tuple(reversed(self.modalities))[:-1]  # the modalities taken out, in order

    def configure_model(self, model):
        self.model = model  # the bias that stays in the partial prediction

    def start_epoch(self, epoch, model, optimizer):
        # BalanceBenchmark shuffles the modality list each epoch and removes its last ones in turn; here each removed
        # modality is drawn from those left (the same order distribution), the same on every process.
        generator = torch.Generator().manual_seed(epoch_seed(self.args.random_seed, epoch))
        left, removed = list(self.modalities), []
        for _ in range(len(self.modalities) - 1):
            removed.append(left.pop(int(torch.randint(len(left), (1,), generator=generator))))
        self.removed = tuple(removed)
        # which modality went first (the last one is never removed first: its flag would be implied)
        return {f"cml_removed_{m}": float(self.removed[0] == m) for m in self.modalities[:-1]}

    def partial_logits(self, out) -> List[torch.Tensor]:
        """The successive partial predictions, one per removed modality."""
        partials, before = [], out.logits
        biases = None if self.model.mmcosine else self.model.fusion.classifier_biases()
        for m in self.removed:
            before = before - out.unimodal[m] if biases is None else before - (out.unimodal[m] - biases[m])
            partials.append(before)
        return partials

    def loss(self, out, labels, epoch):
        if not self.active(epoch):
            self.logged = {"cml_hinge": 0.0}
            return super().loss(out, labels, epoch)
        total_loss, penalty = cml_loss(out.logits, self.partial_logits(out), labels, self.args.cml_lambda,
                                       self.args.cml_penalty)
        self.logged = {"cml_hinge": penalty.item()}
        return total_loss
