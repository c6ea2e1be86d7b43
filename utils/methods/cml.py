"""CML, Calibrating Multimodal Learning (Ma et al., ICML 2023), as BalanceBenchmark's CML_trainer
has it (the authors' code was not read). Each epoch one modality, drawn at random, is the one
removed; the prediction without it, z_p = z - (z_m - b_m) (its weights' contribution taken out,
the bias kept), must not be more confident than the full one:

    loss = (CE(z) + CE(z_p)) / 2 + lambda * max(0, sum_i (conf_p,i - conf_s,i)),

conf = the largest softmax probability, the hinge on the batch sum as there. Under MMCosine the
modality's logits carry no bias: z_p = z - z_m. Active in the 0-based epochs --modulation_starts ..
--modulation_ends (BalanceBenchmark: 0..80); plain cross-entropy outside.
"""
import torch
import torch.nn.functional as F

from ..flag_types import NONNEGATIVE
from ..seed import epoch_seed
from .base import Method

MODALITIES = ("audio", "visual")


def cml_loss(logits, partial, labels, lam: float):
    """(loss, hinge term) from the full and the partial logits."""
    logits, partial = logits.float(), partial.float()
    gap = (partial.softmax(1).max(1).values - logits.softmax(1).max(1).values).sum()
    hinge = torch.clamp(gap, min=0.0)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(partial, labels)) / 2 + lam * hinge, hinge


class CML(Method):
    name = "cml"
    single_process_only = "its hinge is on the batch sum, which each process would take over its part only"
    default_window_end = 80  # BalanceBenchmark's trainer_config

    @classmethod
    def add_args(cls, group):
        group.add_argument("--cml_lambda", type=NONNEGATIVE, default=0.1,
                           help="CML: weight of the confidence hinge (BalanceBenchmark's lam)")

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
        total, hinge = cml_loss(out.logits, self.partial_logits(out), labels, self.args.cml_lambda)
        self.logged = {"cml_hinge": hinge.item()}
        return total
