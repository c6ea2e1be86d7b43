"""PMR, Prototypical Modal Rebalance (Fan et al., CVPR 2023), as the authors'
Modal-Imbalance-PMR/main_Prototype_grad.py trains. Defined for two modalities (the authors' code boosts
whichever of audio and visual is behind; here the dataset's first and second, a and v below); other counts
are refused (BalanceBenchmark's three-modality PMR trainer scales gradients as OGM does instead: not PMR).

Before each epoch the class prototypes c_k^m (the mean encoder feature of class k) are computed in
eval mode over the first tenth of a shuffled pass of the training set, as augmented for training.
On AVE the authors take the whole validation set instead, unaugmented and uncut
(main_Prototype_grad.py:426-427, 535, 552): --pmr_prototype_set validation, main_AVE.py's default.
A class absent from the pass gets a zero prototype (a NaN one in the authors' code). From the third
computation on the prototypes are an EMA with the previous ones,
c <- (1 - mu) c_new + mu c_old (--pmr_momentum; the authors' CREMA-D scripts use 0). Per step,

    h_m,k = -||f_m - c_k^m||_2                (prototype logits)
    s_m   = sum over the batch of softmax(h_m)[true class]
    loss  = CE(z) + alpha * CE(h_v)  if s_a > s_v;   CE(z) + alpha * CE(h_a)  if s_a < s_v;   CE(z) on a tie

so only the modality behind on its prototypes gets the prototype cross-entropy, in the 0-based epochs
--modulation_starts .. --modulation_ends (the scripts: 0..70). The paper's prototypical entropy
regularisation of the leading modality is not in the authors' public code, and not here.
"""
import random

import torch
import torch.nn.functional as F

from dataset.errors import DataError

from .. import distributed
from ..flag_types import FRACTION, NONNEGATIVE
from ..seed import epoch_seed
from .base import Method
from .per_sample import training_pass_keys
from .scores import true_class_scores

MOMENTUM = __import__("utils.flag_types", fromlist=["Bounded"]).Bounded(float, low=0, high=1, high_open=True)


def prototype_logits(features: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """-(Euclidean distance) of each feature to each class prototype: (B, C)."""
    return -torch.cdist(features.float(), prototypes.float().to(features.device))


class PMR(Method):
    name = "pmr"
    single_process_only = "its prototype pass over the training set is not yet checked against one process"
    n_modalities = 2  # the authors boost the one of two modalities that is behind
    default_window_end = 70  # the authors' CREMA-D scripts: --modulation_ends 70

    @classmethod
    def add_args(cls, group, modalities):
        group.add_argument("--pmr_alpha", type=NONNEGATIVE, default=2.0,
                           help="PMR: weight of the prototype cross-entropy (the authors' CREMA-D concat script: 2.0)")
        group.add_argument("--pmr_momentum", type=MOMENTUM, default=0.0,
                           help="PMR: EMA momentum of the prototypes (the authors' CREMA-D scripts: 0)")
        group.add_argument("--pmr_fraction", type=FRACTION, default=0.1,
                           help="PMR: share of the training batches the prototypes are computed on (authors': a tenth)")
        group.add_argument("--pmr_prototype_set", choices=["train", "validation"], default="train",
                           help="PMR: what the prototypes average: train = the first --pmr_fraction of an augmented, "
                                "shuffled pass of the train split (the authors' CREMA-D, KS, VGGSound); validation = "
                                "the whole validation set, unaugmented (the authors' AVE)")

    def __init__(self, args, *context):
        super().__init__(args, *context)
        self.prototypes = None  # {modality name: (C, D)}
        self.computed = 0

    def configure_model(self, model):
        if len(set(model.dims.values())) != 1:  # both modalities' prototypes are one (2, C, D) tensor
            raise DataError(f"--method pmr compares prototypes of features of one size, and the encoders give "
                            f"{model.dims}: use encoders of one feature size (main_Food.py: --text_dim 512)")

    def split_train(self, train, seed, val=None):
        if self.args.pmr_prototype_set == "validation" and val is None:
            raise DataError("--pmr_prototype_set validation needs a validation set, and this run has none: give "
                            "--val_split, or use --pmr_prototype_set train")
        self.train_set, self.val_set = train, val
        return train, None

    def prototype_pass(self, epoch: int):
        """(dataset, keys) the prototypes average over: the whole validation set as scored (no augmentation), or the
        first --pmr_fraction of the batches of a shuffled pass of the train split, augmented as for training."""
        if self.args.pmr_prototype_set == "validation":
            return self.val_set, list(range(len(self.val_set)))
        n = len(self.train_set)
        order = list(range(n))
        random.Random(epoch_seed(self.args.random_seed, -epoch)).shuffle(order)
        batches = n // self.args.batch_size + (n % self.args.batch_size > 0)
        used = order[:max(int(batches * self.args.pmr_fraction), 1) * self.args.batch_size]
        return self.train_set, training_pass_keys(self.args.random_seed, epoch, used)

    def compute_prototypes(self, epoch: int, n_classes: int):
        """Class means of the encoder features over the prototype pass (see prototype_pass)."""
        sums, counts = None, None
        for out, labels in self.forward_batches(*self.prototype_pass(epoch)):
            feats = torch.stack([out.enc[m].float() for m in self.modalities])  # (2, B, D)
            if sums is None:
                sums = feats.new_zeros(len(self.modalities), n_classes, feats.shape[2])
                counts = feats.new_zeros(n_classes)
            sums.index_add_(1, labels, feats)
            counts += torch.bincount(labels, minlength=n_classes).float()
        packed = distributed.all_reduce_sum(torch.cat([sums.flatten(), counts]))
        sums, counts = packed[:sums.numel()].view_as(sums), packed[sums.numel():]
        fresh = sums / counts.clamp(min=1)[None, :, None]  # a class absent from the pass keeps a zero prototype
        if self.prototypes is not None and self.computed >= 2:
            mu = self.args.pmr_momentum
            fresh = (1 - mu) * fresh + mu * torch.stack([self.prototypes[m] for m in self.modalities])
        self.prototypes = dict(zip(self.modalities, fresh))
        self.computed += 1

    def start_epoch(self, epoch, model, optimizer):
        self.compute_prototypes(epoch, model.n_classes)
        return {}

    def loss(self, out, labels, epoch):
        first, second = self.modalities
        base = F.cross_entropy(out.logits.float(), labels)
        proto = {m: prototype_logits(out.enc[m], self.prototypes[m]) for m in self.modalities}
        score_1, score_2 = true_class_scores(labels, proto[first], proto[second])
        behind = None
        if self.active(epoch) and score_1 != score_2:
            behind = second if score_1 > score_2 else first
        self.logged = {f"pmr_boosted_{m}": float(behind == m) for m in self.modalities}
        self.logged[f"pmr_score_ratio_{self.tags[first]}"] = score_1 / max(score_2, 1e-12)
        if behind is None:
            return base
        return base + self.args.pmr_alpha * F.cross_entropy(proto[behind], labels)

    def state_dict(self):
        protos = None if self.prototypes is None else {k: v.cpu() for k, v in self.prototypes.items()}
        return {"prototypes": protos, "computed": self.computed}

    def load_state_dict(self, state):
        self.prototypes, self.computed = state.get("prototypes"), state.get("computed", 0)
