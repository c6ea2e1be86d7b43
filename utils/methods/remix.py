"""Data Remixing (Ma, Chen, Deng, "Improving Multimodal Learning Balance and Sufficiency through Data Remixing",
ICML 2025), as the authors' MatthewMaxy/Remix_ICML2025 @ 80898aa trains (train.py, models/models.py), for any
number of modalities.

The model gets a separate linear head on each encoder's features (model.add_unimodal_heads(); their head_audio /
head_video) besides the fused head.

Warm-up, the --remix_warmup first epochs (their 0-based `epoch < args.warmup`, train.py:101-125):

    L = CE(z) + sum_m w_m CE(h_m(f_m)),      w_m = --remix_<modality>_warmup_weight (their alpha = beta = 0.5)

Every later epoch (train.py:60-99, 127-173, 243-250) starts with a no-grad eval-mode pass over the training clips
with the test-time transform (their mode 'val': the train csv, test transforms). Per clip and modality

    KL_m = sum_c p_m,c log2(p_m,c / (1/C)),   p_m = softmax(h_m(f_m)) clipped to [1e-9, 1]

(C the dataset's class count; theirs hard-codes 6), and the clip goes to the subset of the modality that is LESS
confident on it: argmin_m KL_m (theirs: audio if KL_a < KL_v, else visual; a tie goes to the later modality, for
any M). The epoch then trains each clip once, subset by subset, each subset shuffled (seeded by (seed, epoch), so
a resumed run draws the same) and cut into batches of its own (the sampler's ordered, homogeneous entries; an
entry's flag is its modality's index). Their order is the visual subset, then the audio one: the LAST modality's
subset first, down to the first's (--remix_subset_order dataset: the first's first). In a batch of modality m the
other modalities' encoder features are zeroed before the fusion (their in-place `a[:, :] = 0`), and

    L = CE(z of the masked features) + gamma_m CE(h_m(f_m)),     gamma_m = --remix_<modality>_gamma (theirs 1)

As theirs, the masked encoders still run forward in train mode (their BatchNorm statistics move) and take a zero
gradient, so Adam's momentum and L2 decay still move them on the other subsets' steps (--remix_masked_encoder
run). --remix_masked_encoder skip does not run them (zeros in their place, no gradient, no BatchNorm update): the
decoupling the paper describes, and a cheaper step.

The subsets' batch counts differ between processes under torchrun, so the method runs in one process.
"""
from typing import List

import torch
import torch.nn.functional as F

from ..flag_types import NONNEGATIVE, NONNEGATIVE_INT
from ..seed import epoch_seed
from .base import Method
from .flagged import FlaggedSamples
from .holdout import held_out
from .per_sample import per_sample_rows

PROBABILITY_FLOOR = 1e-9  # their np.clip(predictions, 1e-9, 1.0)


def confidence(logits: torch.Tensor, n_classes: int) -> torch.Tensor:
    """KL(p || uniform) in bits per sample, p = softmax(logits) clipped as theirs (train.py:52-57)."""
    p = F.softmax(logits.double(), dim=1).clamp(PROBABILITY_FLOOR, 1.0)
    return (p * torch.log2(p * n_classes)).sum(1)


def assign(kl: torch.Tensor) -> torch.Tensor:
    """(N,) index of the modality each clip trains: the least confident one (smallest KL) of the (N, M) table, a
    tie going to the later modality (their `KL_audio < KL_video`, else visual)."""
    flipped = torch.flip(kl, dims=[1])  # argmin takes the first of equal values: search from the last modality
    return kl.shape[1] - 1 - flipped.argmin(1)


def remix_entries(assigned: torch.Tensor, order: List[int], generator: torch.Generator):
    """[(clip, modality index)]: the clips of each modality in `order`, each group shuffled."""
    entries = []
    for k in order:
        clips = torch.nonzero(assigned == k).flatten()
        clips = clips[torch.randperm(len(clips), generator=generator)]
        entries += [(int(i), k) for i in clips]
    return entries


class Remix(Method):
    name = "remix"
    resamples_train = True
    ordered_entries = True
    homogeneous_batches = True
    single_process_only = "each process would train its own number of modality-pure batches"

    @classmethod
    def add_args(cls, group, modalities):
        group.add_argument("--remix_warmup", type=NONNEGATIVE_INT, default=10,
                           help="Data Remixing: epochs of warm-up (fused + weighted uni-modal losses) before the "
                                "per-epoch remixing (the authors' 10)")
        for name in modalities:
            group.add_argument(f"--remix_{name}_warmup_weight", type=NONNEGATIVE, default=0.5,
                               help=f"Data Remixing: weight of the {name} head's loss in the warm-up (the authors' "
                                    "alpha / beta 0.5)")
        for name in modalities:
            group.add_argument(f"--remix_{name}_gamma", type=NONNEGATIVE, default=1.0,
                               help=f"Data Remixing: weight of the {name} head's loss in {name} batches (the authors' "
                                    "gamma1 / gamma2 1)")
        group.add_argument("--remix_subset_order", choices=["reverse", "dataset"], default="reverse",
                           help="Data Remixing: which subset trains first: reverse = the last modality's (the "
                                "authors': visual, then audio), dataset = the first modality's")
        group.add_argument("--remix_masked_encoder", choices=["run", "skip"], default="run",
                           help="Data Remixing: run = the masked modalities' encoders still run in train mode and take "
                                "a zero gradient (the authors'); skip = not run at all (no BatchNorm update, no "
                                "optimizer update)")

    def __init__(self, args, *context):
        super().__init__(args, *context)
        self.entries = None  # the epoch's (clip, modality index) entries; None in the warm-up

    def weight(self, kind: str, m: str) -> float:
        return getattr(self.args, f"remix_{m}_{kind}")

    def configure_model(self, model):
        model.add_unimodal_heads()

    def split_train(self, train, seed, val=None):
        self.clean_train = held_out(train, range(len(train)))  # their mode 'val': the train clips, test transforms
        return FlaggedSamples(train), None

    def subset_order(self) -> List[int]:
        order = list(range(len(self.modalities)))
        return order[::-1] if self.args.remix_subset_order == "reverse" else order

    def start_epoch(self, epoch, model, optimizer):
        self.entries = None
        if epoch <= self.args.remix_warmup:  # their 0-based epoch < warmup
            return {}
        kl = self.confidences(model)
        assigned = assign(kl)
        generator = torch.Generator().manual_seed(epoch_seed(self.args.random_seed, epoch))
        self.entries = remix_entries(assigned, self.subset_order(), generator)
        record = {}
        for k, m in enumerate(self.modalities):
            tag = self.tags[m]
            record[f"remix_share_{tag}"] = (assigned == k).double().mean().item()
            record[f"remix_kl_{tag}"] = kl[:, k].mean().item()
        return record

    def confidences(self, model) -> torch.Tensor:
        """(N, M) KL to uniform of each separate head's prediction on every training clip (eval mode, no grad)."""
        n_classes = model.n_classes

        def rows(out, labels):
            return torch.stack([confidence(out.heads[m], n_classes) for m in self.modalities], 1)
        keys = list(range(len(self.clean_train)))
        return per_sample_rows(self.forward_batches, self.clean_train, keys, rows, width=len(self.modalities),
                               device=next(model.parameters()).device)

    def train_entries(self, epoch):
        return self.entries

    def loss(self, out, labels, epoch):  # the warm-up
        losses = {m: F.cross_entropy(out.heads[m].float(), labels) for m in self.modalities}
        self.logged = {f"remix_loss_{self.tags[m]}": v.item() for m, v in losses.items()}
        return F.cross_entropy(out.logits.float(), labels) + \
            sum(self.weight("warmup_weight", m) * losses[m] for m in self.modalities)

    def train_step(self, step):
        if step.flags is None:
            return super().train_step(step)
        k = int(step.flags[0])
        if not bool((step.flags == k).all()):
            raise RuntimeError("Data Remixing trains modality-pure batches: the sampler mixed two subsets")
        kept = self.modalities[k]
        out = self.masked_forward(step, kept)
        head_loss = F.cross_entropy(out.heads[kept].float(), step.labels)
        loss = F.cross_entropy(out.logits.float(), step.labels) + self.weight("gamma", kept) * head_loss
        step.check_finite(loss)
        step.backward_and_step(loss)
        return out, {f"remix_batches_{self.tags[m]}": float(m == kept) for m in self.modalities}

    def masked_forward(self, step, kept: str):
        """The model's output with every modality but `kept` zeroed after its encoder."""
        raw = step.raw_model
        if self.args.remix_masked_encoder == "skip":
            with step.precision.autocast():  # every encoder gives features of one width (the fusion's input)
                feature = raw.encoders[kept](step.inputs[kept])
                return raw.head({m: feature if m == kept else torch.zeros_like(feature) for m in raw.names})
        # x * 0 rather than zeros: the masked encoder keeps its graph and takes a zero gradient, as theirs
        raw.feature_transform = lambda enc: {m: x if m == kept else x * 0 for m, x in enc.items()}
        try:
            return step.forward()
        finally:
            raw.feature_transform = None
