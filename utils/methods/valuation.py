"""Sample-level and modality-level modality valuation (Wei, Feng, Wang, Hu, "Enhancing Multimodal
Cooperation via Sample-level Modality Valuation", CVPR 2024), as the authors' code/sample_level.py and
code/modality_level.py train (GeWu-Lab/Valuate-and-Enhance-Multimodal-Cooperation).

Before every epoch after the --valuation_warmup first ones, an eval-mode pass over the training set
(augmented as for training) scores each clip's modalities by their Shapley value for being right,
with their values v(both) = 2 if the fused prediction is right, v(one) = 1 if that modality alone
(the other's encoder features zeroed) is right:

    phi_a = (v_a + v_both - v_v) / 2,   phi_v = (v_v + v_both - v_a) / 2      (in {-0.5, 0, ..., 1.5})

Then the epoch trains on every clip once plus copies that train one modality alone, the other's
features zeroed after its encoder (their feature-level drop):
- sample_level: per clip and modality m, 1 copy if 0.4 < phi_m < 1, 2 if -0.1 < phi_m < 0.4, 3 if
  phi_m < -0.1 (none when m is already enough: phi_m >= 1);
- modality_level: the mean phi over a random --valuation_part_ratio of the clips gives each modality's
  gap 1 - phi; int(|gap_a - gap_v| x 2/3 x alpha x N) clips drawn at random (with replacement) are
  copied, each training the modality with the larger gap.
The copies are entries of the sampler (utils/sampling.py), so workers, torchrun and resume see the same
epoch: the pass depends on the weights a checkpoint holds, the draws on (seed, epoch).
"""
import numpy as np
import torch

from ..flag_types import FRACTION, NONNEGATIVE, NONNEGATIVE_INT
from ..seed import epoch_seed
from .base import Method
from .flagged import FlaggedSamples
from .per_sample import per_sample_rows, training_pass_keys

BOTH, WITHOUT_AUDIO, WITHOUT_VISUAL = 0, 1, 2  # entry flags: which modality a copy trains without


def contributions(correct_both: torch.Tensor, correct_a: torch.Tensor, correct_v: torch.Tensor):
    """(phi_a, phi_v) per sample from three 0/1 vectors, with the authors' values (2 for both modalities)."""
    v_both, v_a, v_v = 2.0 * correct_both, correct_a.double(), correct_v.double()
    return (v_a + v_both - v_v) / 2, (v_v + v_both - v_a) / 2


def sample_copies(phi: float) -> int:
    if 0.4 < phi < 1:
        return 1
    if -0.1 < phi < 0.4:
        return 2
    return 3 if phi < -0.1 else 0


def sample_level_entries(phi_a, phi_v):
    """Every clip once, then per clip the copies training audio alone, then those training visual alone."""
    entries = [(i, BOTH) for i in range(len(phi_a))]
    for i, (a, v) in enumerate(zip(phi_a.tolist(), phi_v.tolist())):
        entries += [(i, WITHOUT_VISUAL)] * sample_copies(a) + [(i, WITHOUT_AUDIO)] * sample_copies(v)
    return entries


def modality_level_entries(phi_a, phi_v, part_ratio: float, alpha: float, rng: np.random.RandomState):
    n = len(phi_a)
    part = rng.choice(n, int(n * part_ratio))
    gap_a, gap_v = 1.0 - float(phi_a[part].mean()), 1.0 - float(phi_v[part].mean())
    copies = rng.choice(n, int(abs(gap_a - gap_v) / 3 * 2 * alpha * n))
    flag = WITHOUT_VISUAL if gap_a > gap_v else WITHOUT_AUDIO
    return [(i, BOTH) for i in range(n)] + [(int(i), flag) for i in copies], (gap_a, gap_v)


class SampleLevel(Method):
    name = "sample_level"
    resamples_train = True

    @classmethod
    def add_args(cls, group):
        if cls is not SampleLevel:
            return
        group.add_argument("--valuation_warmup", type=NONNEGATIVE_INT, default=5,
                           help="sample_level / modality_level: epochs of plain training before resampling (authors' 5)")
        group.add_argument("--valuation_part_ratio", type=FRACTION, default=0.2,
                           help="modality_level: share of the clips whose mean contribution gives the gaps (authors' 0.2)")
        group.add_argument("--valuation_alpha", type=NONNEGATIVE, default=1.0,
                           help="modality_level: scale of the resampled share (the authors' alpha 1)")

    def __init__(self, args):
        super().__init__(args)
        self.entries = None

    def split_train(self, train, seed, val=None):
        self.train_set = train
        return FlaggedSamples(train), None

    def train_entries(self, epoch):
        return self.entries

    def start_epoch(self, epoch, model, optimizer):
        self.entries = None
        if epoch <= self.args.valuation_warmup:
            return {}
        phi_a, phi_v = self.contributions(model, epoch)
        self.entries, record = self.resample(phi_a, phi_v, epoch)
        flags = [flag for _, flag in self.entries]
        return {**record, "valuation_phi_audio": phi_a.mean().item(), "valuation_phi_visual": phi_v.mean().item(),
                "valuation_copies_audio_alone": float(flags.count(WITHOUT_VISUAL)),
                "valuation_copies_visual_alone": float(flags.count(WITHOUT_AUDIO))}

    def resample(self, phi_a, phi_v, epoch):
        return sample_level_entries(phi_a, phi_v), {}

    def contributions(self, model, epoch):
        """phi_a, phi_v of every training clip, from one eval pass (the encoders run once per clip)."""
        def rows(out, labels):
            zeros_a, zeros_v = torch.zeros_like(out.enc_a), torch.zeros_like(out.enc_v)
            alone_a = model.head(out.enc_a, zeros_v).logits
            alone_v = model.head(zeros_a, out.enc_v).logits
            return torch.stack([(lg.argmax(1) == labels) for lg in (out.logits, alone_a, alone_v)], 1)
        keys = training_pass_keys(self.args.random_seed, epoch, range(len(self.train_set)))
        correct = per_sample_rows(self.forward_batches, self.train_set, keys, rows, width=3,
                                  device=next(model.parameters()).device)
        return contributions(correct[:, 0], correct[:, 1], correct[:, 2])

    def train_step(self, step):
        if step.flags is None or not bool((step.flags != BOTH).any()):
            return super().train_step(step)
        keep_a = (step.flags != WITHOUT_AUDIO)[:, None]
        keep_v = (step.flags != WITHOUT_VISUAL)[:, None]
        step.raw_model.feature_transform = lambda a, v: (a * keep_a.to(a.dtype), v * keep_v.to(v.dtype))
        try:
            return super().train_step(step)
        finally:
            step.raw_model.feature_transform = None


class ModalityLevel(SampleLevel):
    name = "modality_level"

    def resample(self, phi_a, phi_v, epoch):
        rng = np.random.RandomState(epoch_seed(self.args.random_seed, epoch))
        entries, (gap_a, gap_v) = modality_level_entries(phi_a.numpy(), phi_v.numpy(), self.args.valuation_part_ratio,
                                                         self.args.valuation_alpha, rng)
        return entries, {"valuation_gap_audio": gap_a, "valuation_gap_visual": gap_v}

