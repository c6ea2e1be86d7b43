"""Sample-level and modality-level modality valuation (Wei, Feng, Wang, Hu, "Enhancing Multimodal
Cooperation via Sample-level Modality Valuation", CVPR 2024), as the authors' code/sample_level.py and
code/modality_level.py train (GeWu-Lab/Valuate-and-Enhance-Multimodal-Cooperation).

Before every epoch after the --valuation_warmup first ones, an eval-mode pass over the training set
(augmented as for training) scores each clip's modalities by their Shapley value for being right. A set S
of modalities is worth v(S) = |S| if the fused prediction with only S kept (the others' encoder features
zeroed) is right, else 0: the authors' values v(both) = 2, v(one) = 1, so that for two modalities

    phi_a = (v_a + v_both - v_v) / 2,   phi_v = (v_v + v_both - v_a) / 2      (in {-0.5, 0, ..., 1.5})

and for M modalities phi_m = sum over S without m of |S|! (M - |S| - 1)! / M! (v(S + m) - v(S)), from the
2^M - 1 predictions (BalanceBenchmark's Shapley over any number of modalities, on the authors' scale: the
phi of a clip every subset gets right are all 1).

Then the epoch trains on every clip once plus copies that train one modality alone, the others' features
zeroed after their encoders (their feature-level drop):
- sample_level: per clip and modality m, 1 copy if 0.4 < phi_m < 1, 2 if -0.1 < phi_m < 0.4, 3 if
  phi_m < -0.1 (none when m is already enough: phi_m >= 1);
- modality_level: the mean phi over a random --valuation_part_ratio of the clips gives each modality's
  gap 1 - phi; int(D x 2/3 x alpha x N) clips drawn at random (with replacement) are copied, each training
  the modality with the largest gap, where D = |gap_a - gap_v| for two modalities and, for M, the sum of
  |gap_m - gap_k| over ordered pairs divided by M! (BalanceBenchmark's create_dataset_modality_level).
The copies are entries of the sampler (utils/sampling.py), so workers, torchrun and resume see the same
epoch: the pass depends on the weights a checkpoint holds, the draws on (seed, epoch). An entry's flag says
which modalities it trains without, one bit per modality in the dataset's order (0: none; for audio-visual 1
drops audio, 2 drops visual).
"""
from itertools import combinations
from math import factorial
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch

from ..flag_types import FRACTION, NONNEGATIVE, NONNEGATIVE_INT
from ..seed import epoch_seed
from .base import Method
from .flagged import FlaggedSamples
from .per_sample import per_sample_rows, training_pass_keys

BOTH = 0  # the flag of an entry that trains every modality


def alone(index: int, n_modalities: int) -> int:
    """The flag of a copy that trains modality `index` alone: every other modality's bit."""
    return (2 ** n_modalities - 1) ^ (1 << index)


def subsets(names: Sequence[str]) -> List[Tuple[str, ...]]:
    """The non-empty sets of modalities (tuples in `names` order), all of them first, then by size."""
    names = tuple(names)
    return [names] + [s for size in range(1, len(names)) for s in combinations(names, size)]


def contributions(correct: Dict[Tuple[str, ...], torch.Tensor], names: Sequence[str]) -> Dict[str, torch.Tensor]:
    """{name: phi per sample} from `correct`: for each non-empty set of modalities (a tuple in `names` order), 0/1
    per sample, whether the prediction with only that set kept is right; with the authors' values v(S) = |S|.
    The weighted sum is taken in integers (weights |S|! (M - |S| - 1)!) and divided by M! once, so a phi is the
    exact value rounded once: a clip every set gets right has phi 1 exactly (no copies), for any M."""
    names = tuple(names)
    n = len(names)
    value = {s: len(s) * correct[s].double() for s in correct}
    phi = {}
    for m in names:
        others = [x for x in names if x != m]
        weighted = None
        for size in range(n):
            weight = factorial(size) * factorial(n - size - 1)
            for subset in combinations(others, size):
                with_m = tuple(x for x in names if x in subset or x == m)
                gain = value[with_m] - value[subset] if subset else value[with_m]
                weighted = weight * gain if weighted is None else weighted + weight * gain
        phi[m] = weighted / factorial(n)
    return phi


def sample_copies(phi: float) -> int:
    if 0.4 < phi < 1:
        return 1
    if -0.1 < phi < 0.4:
        return 2
    return 3 if phi < -0.1 else 0


def sample_level_entries(phis: Sequence[torch.Tensor]):
    """Every clip once, then per clip the copies training the first modality alone, then the second's, ... (`phis`:
    one tensor per modality, in order)."""
    n = len(phis)
    entries = [(i, BOTH) for i in range(len(phis[0]))]
    for i, row in enumerate(zip(*(phi.tolist() for phi in phis))):
        for k, phi in enumerate(row):
            entries += [(i, alone(k, n))] * sample_copies(phi)
    return entries


def gap_spread(gaps: Sequence[float]) -> float:
    """D: |gap_1 - gap_2| for two modalities; for M, the sum over ordered pairs divided by M! (BalanceBenchmark)."""
    if len(gaps) == 2:
        return abs(gaps[0] - gaps[1])
    return sum(abs(g - h) for i, g in enumerate(gaps) for j, h in enumerate(gaps) if i != j) / factorial(len(gaps))


def modality_level_entries(phis: Sequence[np.ndarray], part_ratio: float, alpha: float, rng: np.random.RandomState):
    """(entries, gaps): every clip once, then the copies training the modality with the largest gap alone (the later
    one of a tie, as the authors' `gap_a > gap_v` test gives visual)."""
    n, m = len(phis[0]), len(phis)
    part = rng.choice(n, int(n * part_ratio))
    gaps = [1.0 - float(phi[part].mean()) for phi in phis]
    copies = rng.choice(n, int(gap_spread(gaps) / 3 * 2 * alpha * n))
    weakest = max(range(m), key=lambda k: (gaps[k], k))
    return [(i, BOTH) for i in range(n)] + [(int(i), alone(weakest, m)) for i in copies], gaps


class SampleLevel(Method):
    name = "sample_level"
    resamples_train = True

    @classmethod
    def add_args(cls, group, modalities):
        if cls is not SampleLevel:
            return
        group.add_argument("--valuation_warmup", type=NONNEGATIVE_INT, default=5,
                           help="sample_level / modality_level: epochs of plain training before resampling (authors' 5)")
        group.add_argument("--valuation_part_ratio", type=FRACTION, default=0.2,
                           help="modality_level: share of the clips whose mean contribution gives the gaps (authors' 0.2)")
        group.add_argument("--valuation_alpha", type=NONNEGATIVE, default=1.0,
                           help="modality_level: scale of the resampled share (the authors' alpha 1)")

    def __init__(self, args, *context):
        super().__init__(args, *context)
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
        phis = self.contributions(model, epoch)
        self.entries, record = self.resample([phis[m] for m in self.modalities], epoch)
        flags = [flag for _, flag in self.entries]
        n = len(self.modalities)
        copies = {f"valuation_copies_{m}_alone": float(flags.count(alone(k, n))) for k, m in enumerate(self.modalities)}
        return {**record, **{f"valuation_phi_{m}": phis[m].mean().item() for m in self.modalities}, **copies}

    def resample(self, phis, epoch):
        return sample_level_entries(phis), {}

    def contributions(self, model, epoch):
        """{name: phi} of every training clip, from one eval pass (the encoders run once per clip, the head once
        per set of modalities)."""
        kept = subsets(self.modalities)

        def rows(out, labels):
            right = [out.logits.argmax(1) == labels]  # every modality kept
            for s in kept[1:]:
                enc = {m: x if m in s else torch.zeros_like(x) for m, x in out.enc.items()}
                right.append(model.head(enc).logits.argmax(1) == labels)
            return torch.stack(right, 1)
        keys = training_pass_keys(self.args.random_seed, epoch, range(len(self.train_set)))
        correct = per_sample_rows(self.forward_batches, self.train_set, keys, rows, width=len(kept),
                                  device=next(model.parameters()).device)
        return contributions({s: correct[:, i] for i, s in enumerate(kept)}, self.modalities)

    def train_step(self, step):
        if step.flags is None or not bool((step.flags != BOTH).any()):
            return super().train_step(step)
        keep = {m: ((step.flags >> i) & 1 == 0)[:, None] for i, m in enumerate(self.modalities)}
        step.raw_model.feature_transform = lambda enc: {m: x * keep[m].to(x.dtype) for m, x in enc.items()}
        try:
            return super().train_step(step)
        finally:
            step.raw_model.feature_transform = None


class ModalityLevel(SampleLevel):
    name = "modality_level"

    def resample(self, phis, epoch):
        rng = np.random.RandomState(epoch_seed(self.args.random_seed, epoch))
        entries, gaps = modality_level_entries([phi.numpy() for phi in phis], self.args.valuation_part_ratio,
                                               self.args.valuation_alpha, rng)
        return entries, {f"valuation_gap_{m}": gap for m, gap in zip(self.modalities, gaps)}
