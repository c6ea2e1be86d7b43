"""BSS, Balance-aware Sequence Sampling (Guan, Jiang, Yang, "Balance-Aware Sequence Sampling Makes Multi-Modal
Learning Better", IJCAI 2025), as the authors' njustkmg/IJCAI25-BSS @ 495b94e trains (CREMA-D/train-CL.py,
train-SPL.py, models/basic_model.py; KS/ for Kinetics-Sounds, NVGesture/ for three modalities), for any number of
modalities.

The model gets a separate linear head on each encoder's features (their linear_a / linear_v) besides the fused
head (linear_last). The loss is

    L = w_fused CE(z) + w_uni sum_m CE(h_m(f_m))      (CREMA-D: 0.1 and 0.9; Kinetics-Sounds: 1 and 1)

and the prediction is the sum of the separate heads' logits (CREMA-D, --bss_predict heads; Kinetics-Sounds adds
the fused head's, heads_and_fused): the heads_sum combiner, kept in the checkpoint.

Each clip's balance score comes from a pass over the training clips (augmented as for training) with the same
weighted per-sample loss and the cosine similarity of the heads' softmax outputs (the mean over pairs for more
than two, as their NVGesture code), both min-max normalised over the training set:

    CL  (--bss_mode cl, train-CL.py:141-182, 229-239): s = (1 - sim_n) + loss_n, scored ONCE, before the first
        epoch (on the untrained network, as theirs); epoch t (1-based) trains the lambda_t N easiest clips,
        shuffled, lambda_t = min(1, sqrt((1 - lambda_0^2) / T * t + lambda_0^2)) (theirs with 0-based epoch + 1).
        The order is kept in the method's state, so a resumed run trains the same subsets.
    SPL (--bss_mode spl, train-SPL.py:141-182, 228-233): before every epoch, s = loss_n - sim_n and weights
        1 - s + 0.01; one multinomial draw WITHOUT replacement over all N clips (seeded by (seed, epoch)) orders
        the epoch: each clip once, easy (heavy) clips first in expectation, in the order drawn (ordered entries).

Their scoring pass runs the network in train mode without no_grad (BatchNorm statistics move on it); ours is
the project's eval-mode, no-grad pass (forward_batches). A constant score (max = min) normalises to 0 here
(theirs divides by zero).
"""
import math
from itertools import combinations
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F

from models.fusion import total

from ..flag_types import NONNEGATIVE, POSITIVE_INT, PROBABILITY
from ..seed import epoch_seed
from .base import Method
from .flagged import FlaggedSamples
from .per_sample import per_sample_rows, training_pass_keys

SPL_FLOOR = 0.01  # their `1 - score + 1e-2` (CREMA-D, KS)


def min_max(values: torch.Tensor) -> torch.Tensor:
    """(v - min) / (max - min) over the set; zeros where every value is the same."""
    spread = values.max() - values.min()
    return (values - values.min()) / spread if spread > 0 else torch.zeros_like(values)


def head_similarity(heads: List[torch.Tensor]) -> torch.Tensor:
    """Per sample, the cosine similarity of the heads' softmax outputs, averaged over pairs."""
    probs = [F.softmax(z.float(), dim=1) for z in heads]
    pairs = [F.cosine_similarity(p, q, dim=1) for p, q in combinations(probs, 2)]
    return total(pairs) / len(pairs)


def pacing(epoch: int, lambda_0: float, grow_epochs: int) -> float:
    """lambda_t, the share of the (easiest) clips trained in 1-based `epoch` (their 0-based epoch + 1)."""
    return min(1.0, math.sqrt((1 - lambda_0 ** 2) / grow_epochs * epoch + lambda_0 ** 2))


def curriculum_scores(similarity: torch.Tensor, loss: torch.Tensor) -> torch.Tensor:
    return (1 - min_max(similarity)) + min_max(loss)


def spl_weights(similarity: torch.Tensor, loss: torch.Tensor) -> torch.Tensor:
    return 1 - (min_max(loss) - min_max(similarity)) + SPL_FLOOR


class BSS(Method):
    name = "bss"
    single_process_only = "its scoring pass and self-paced order are not yet checked against one process"
    resamples_train = True

    @property
    def ordered_entries(self):  # SPL's draw is the epoch's order; CL's subset is shuffled
        return self.args.bss_mode == "spl"

    @classmethod
    def add_args(cls, group, modalities):
        group.add_argument("--bss_mode", choices=["cl", "spl"], default="cl",
                           help="BSS: cl = easy-to-hard subsets from scores taken once (train-CL.py); spl = a new "
                                "score-weighted order every epoch (train-SPL.py)")
        group.add_argument("--bss_fused_weight", type=NONNEGATIVE, default=0.1,
                           help="BSS: weight of the fused head's loss (the authors' CREMA-D 0.1; Kinetics-Sounds 1)")
        group.add_argument("--bss_unimodal_weight", type=NONNEGATIVE, default=0.9,
                           help="BSS: weight of each separate head's loss (the authors' CREMA-D 0.9; Kinetics-Sounds 1)")
        group.add_argument("--bss_predict", choices=["heads", "heads_and_fused"], default="heads",
                           help="BSS: the prediction: the sum of the separate heads' logits (the authors' CREMA-D), "
                                "or that plus the fused head's (their Kinetics-Sounds)")
        group.add_argument("--bss_lambda0", type=PROBABILITY, default=0.1,
                           help="BSS cl: share of the clips trained in the first epoch's pacing (the authors' 0.1)")
        group.add_argument("--bss_grow_epochs", type=POSITIVE_INT, default=40,
                           help="BSS cl: epochs until every clip is trained (the authors' T_grow 40)")

    def __init__(self, args, *context):
        super().__init__(args, *context)
        self.order: Optional[torch.Tensor] = None  # CL: the clips, easiest first (scored once)
        self.entries = None

    def configure_model(self, model):
        model.add_unimodal_heads()
        model.set_head({"combine": {"name": "heads_sum", "with_fused": self.args.bss_predict == "heads_and_fused"}})

    def split_train(self, train, seed, val=None):
        self.train_set = train
        return FlaggedSamples(train), None

    def losses(self, out, labels, reduction="mean"):
        """w_fused CE(z) + w_uni sum_m CE(h_m), per sample with reduction 'none'. z: the fused head (out.fused)."""
        fused = F.cross_entropy(out.fused.float(), labels, reduction=reduction)
        heads = total(F.cross_entropy(out.heads[m].float(), labels, reduction=reduction) for m in self.modalities)
        return self.args.bss_fused_weight * fused + self.args.bss_unimodal_weight * heads

    def loss(self, out, labels, epoch):
        return self.losses(out, labels)

    def scores(self, model, epoch):
        """(similarity, loss) per training clip, from one eval-mode pass with training's augmentation."""
        def rows(out, labels):
            similarity = head_similarity([out.heads[m] for m in self.modalities])
            return torch.stack([similarity, self.losses(out, labels, reduction="none")], 1)
        keys = training_pass_keys(self.args.random_seed, epoch, range(len(self.train_set)))
        table = per_sample_rows(self.forward_batches, self.train_set, keys, rows, width=2,
                                device=next(model.parameters()).device)
        return table[:, 0], table[:, 1]

    def start_epoch(self, epoch, model, optimizer):
        record = {}
        n = len(self.train_set)
        if self.args.bss_mode == "cl":
            if self.order is None:  # the first epoch of the run: score the untrained network, once
                similarity, loss = self.scores(model, epoch)
                self.order = torch.sort(curriculum_scores(similarity, loss), stable=True).indices
                record.update(bss_similarity=similarity.mean().item(), bss_score_loss=loss.mean().item())
            kept = max(1, int(n * pacing(epoch, self.args.bss_lambda0, self.args.bss_grow_epochs)))
            self.entries = [(int(i), 0) for i in self.order[:kept]]
        else:
            similarity, loss = self.scores(model, epoch)
            weights = spl_weights(similarity, loss)
            generator = torch.Generator().manual_seed(epoch_seed(self.args.random_seed, epoch))
            drawn = torch.multinomial(weights / weights.sum(), n, replacement=False, generator=generator)
            self.entries = [(int(i), 0) for i in drawn]
            record.update(bss_similarity=similarity.mean().item(), bss_score_loss=loss.mean().item(),
                          bss_weight_min=weights.min().item())
        record["bss_share"] = len(self.entries) / n
        return record

    def train_entries(self, epoch):
        return self.entries

    def state_dict(self) -> Dict:
        return {"order": self.order} if self.order is not None else {}

    def load_state_dict(self, state):
        self.order = state.get("order")
