"""Diagnosing & Re-learning (Wei, Li, Feng, Hu, ECCV 2024), as the authors' code/ours.py trains CREMA-D
(GeWu-Lab/Diagnosing_Relearning_ECCV2024).

Plain joint training, interrupted every --relearn_every epochs (R; their 0-based epoch e with e % R == 0
and e > 0, after its evaluation, at most --relearn_times times): for each modality, the encoder's features
(eval mode) of the training clips and of held-out clips are scaled to [-1, 1] (MinMaxScaler), clustered
by k-means with k = the number of classes (random_state 0), and the purity of each clustering (share of
samples in their cluster's majority class) is taken. Both sets are scored without augmentation, with the
test-time transform: their train set is AVDataset_CD(mode='my_train'), which crops, flips and picks
random frames only in mode 'train' (--relearn_train_view augmented scores the training clips augmented
as for training instead, with draws of their own). The gap between train and held-out purity says how
much the encoder memorises:

    w_m = tanh(lambda |purity_train - purity_heldout|),   theta_m <- w_m theta_m,init + (1 - w_m) theta_m

for every parameter of encoder m (theta_init: the encoder as the run began). The held-out clips are the
--val_split validation set when there is one, else --relearn_holdout of the training split (their own
val.csv is a held-out part of train; BalanceBenchmark reads the test set here). Each modality is scored and
re-initialised on its own, so any number of modalities is handled alike (BalanceBenchmark runs it on three).
"""
import copy

import numpy as np
import torch

from dataset.errors import DataError
from models import FEATURE_DIM

from .. import distributed
from ..checkpoint import load_encoder_weights
from ..flag_types import FRACTION, NONNEGATIVE, NONNEGATIVE_INT, POSITIVE_INT
from .base import Method
from .holdout import KeyedSubset, held_out, shuffled_split
from .per_sample import per_sample_rows, training_pass_keys


def purity(labels: np.ndarray, clusters: np.ndarray) -> float:
    """Share of samples whose cluster's most frequent label is their own."""
    table = np.zeros((clusters.max() + 1, labels.max() + 1))
    np.add.at(table, (clusters, labels), 1)
    return float(table.max(1).sum() / len(labels))


def cluster_purity(features: np.ndarray, labels: np.ndarray, n_classes: int) -> float:
    """The authors' reinit_score for one feature set: MinMax to [-1, 1], k-means (random_state 0), purity."""
    from sklearn.cluster import KMeans
    from sklearn.preprocessing import MinMaxScaler
    scaled = MinMaxScaler(feature_range=(-1, 1)).fit_transform(features)
    # n_init=10: what KMeans ran in the scikit-learn of their time (1.4 made it 1 for k-means++)
    clusters = KMeans(n_clusters=n_classes, random_state=0, n_init=10).fit_predict(scaled)
    return purity(labels, clusters)


class Relearning(Method):
    name = "relearning"

    @classmethod
    def add_args(cls, group, modalities):
        group.add_argument("--relearn_lambda", type=NONNEGATIVE, default=3.0,
                           help="Re-learning: lambda of the re-initialisation strength tanh(lambda x purity gap) (authors' 3)")
        group.add_argument("--relearn_every", type=POSITIVE_INT, default=20,
                           help="Re-learning: re-initialise every R epochs (the authors' CREMA-D script: 20; BB 15)")
        group.add_argument("--relearn_times", type=NONNEGATIVE_INT, default=3,
                           help="Re-learning: at most this many re-initialisations (the authors' 3; BB 2)")
        group.add_argument("--relearn_holdout", type=FRACTION, default=0.1,
                           help="Re-learning: share of the train split held out for the purity gap (without --val_split)")
        group.add_argument("--relearn_train_view", choices=["clean", "augmented"], default="clean",
                           help="Re-learning: the training clips' purity pass without augmentation (the authors' my_train "
                                "mode) or augmented as for training")

    def configure_model(self, model):
        """The encoders as the run begins: as built (the seed alone fixes them), with any pretrained weights."""
        self.n_classes, self.initial = model.n_classes, {}
        for m in self.modalities:
            encoder = copy.deepcopy(model.encoders[m])
            path = getattr(self.args, f"{m}_pretrain", None)
            if path is not None:
                load_encoder_weights(encoder, path, f"encoders.{m}.")
            self.initial[m] = {k: v.detach().clone() for k, v in encoder.named_parameters()}

    def split_train(self, train, seed, val=None):
        if val is not None:
            self.train_set, self.holdout, kept = train, val, range(len(train))
        else:
            held, rest = shuffled_split(len(train), self.args.relearn_holdout, seed)
            kept = sorted(rest)
            self.train_set, self.holdout = KeyedSubset(train, kept), held_out(train, sorted(held))
        self.clean_train = held_out(train, kept)  # the clips trained on, with the test-time transform
        if len(self.holdout) < self.n_classes:
            source = "the --val_split set" if val is not None else f"--relearn_holdout {self.args.relearn_holdout}"
            raise DataError(f"--method relearning clusters the held-out clips into {self.n_classes} classes, but "
                            f"{source} holds {len(self.holdout)}: hold out more (a larger --relearn_holdout or "
                            "--val_split)")
        return self.train_set, self.holdout

    def relearns_before(self, epoch: int) -> bool:
        """Their check after 0-based epoch e = our epoch e + 1, so before our epoch e + 2."""
        count, rest = divmod(epoch - 2, self.args.relearn_every)
        return epoch >= 2 and rest == 0 and 1 <= count <= self.args.relearn_times

    def features(self, dataset, keys, device):
        """({name: encoder features (N, d)}, labels (N,)) of the clips `keys` picks, from one eval-mode pass."""
        d, n = FEATURE_DIM, len(self.modalities)
        rows = per_sample_rows(self.forward_batches, dataset, keys, width=n * d + 1, device=device,
                               rows=lambda out, labels: torch.cat([out.enc[m].float() for m in self.modalities]
                                                                  + [labels[:, None].float()], 1))
        labels = rows[:, -1].long().numpy()
        return {m: rows[:, i * d:(i + 1) * d].numpy() for i, m in enumerate(self.modalities)}, labels

    def start_epoch(self, epoch, model, optimizer):
        if not self.relearns_before(epoch):
            return {}
        device = next(model.parameters()).device
        if self.args.relearn_train_view == "clean":
            train, train_labels = self.features(self.clean_train, list(range(len(self.clean_train))), device)
        else:
            keys = training_pass_keys(self.args.random_seed, epoch, range(len(self.train_set)))
            train, train_labels = self.features(self.train_set, keys, device)
        held, held_labels = self.features(self.holdout, list(range(len(self.holdout))), device)
        record = {}
        for m in self.modalities:
            p_train = cluster_purity(train[m], train_labels, model.n_classes)
            p_held = cluster_purity(held[m], held_labels, model.n_classes)
            weight = float(np.tanh(self.args.relearn_lambda * abs(p_train - p_held)))
            # every process clustered the same features; averaging makes the weight one number for all
            weight = distributed.all_reduce_sum(torch.tensor(weight, dtype=torch.float64, device=device)).item() \
                / distributed.world_size()
            self.reinitialise(model.encoders[m], self.initial[m], weight)
            record.update({f"relearn_purity_train_{m}": p_train, f"relearn_purity_heldout_{m}": p_held,
                           f"relearn_weight_{m}": weight})
        return record

    @staticmethod
    def reinitialise(encoder, initial, weight: float) -> None:
        with torch.no_grad():
            for name, param in encoder.named_parameters():
                param.mul_(1 - weight).add_(initial[name].to(param.device, param.dtype), alpha=weight)
