"""Gradient-Blending (Wang, Tran, Feiszli, CVPR 2020): the loss is a weighted sum of the fused
head's and each modality's own cross-entropy, with weights from each head's
overfitting-to-generalisation ratio. Defined for any number of modalities (the paper blends M uni-modal
heads and the fused one): M + 1 heads.

The validation set of --val_split, or else a held-out part of the training split (--gb_holdout,
never trained on), is the held-out data. Every --gb_every epochs each head k's mean loss is
measured on the held-out clips (V) and on as many training clips (T); between two measurements n and n+N,
    generalisation gain  G_k = V_k(n) - V_k(n+N),   overfitting change  O_k = (V-T)_k(n+N) - (V-T)_k(n),
and the weights are w_k = G_k / O_k^2, normalised to sum to 1 (a head that did not generalise,
G_k <= 0, gets weight 0; if none did, the weights stay). Until the second measurement all heads weigh
1 / (M + 1). Heads are named by the suffixes of their logged losses: "" (fused) and "_<tag>" (loss_a, ...).
"""
import torch.nn.functional as F

from .base import Method
from .holdout import KeyedSubset, held_out, shuffled_split


def heads(tags) -> tuple:
    """The heads' names: the suffixes of their logged losses, fused first, then each modality's (by tag)."""
    return ("", *(f"_{tag}" for tag in tags.values()))


def blending_weights(previous, current, eps: float = 1e-8):
    """previous / current: {head: (train_loss, holdout_loss)}. Returns {head: weight} or None."""
    raw = {}
    for head in current:
        (t0, v0), (t1, v1) = previous[head], current[head]
        gain = v0 - v1
        overfit = (v1 - t1) - (v0 - t0)
        raw[head] = max(gain, 0.0) / (overfit * overfit + eps)
    total = sum(raw.values())
    return {head: value / total for head, value in raw.items()} if total > 0 else None


class GBlending(Method):
    name = "gblending"

    def __init__(self, args, *context):
        super().__init__(args, *context)
        self.heads = heads(self.tags)
        self.weights = {head: 1 / len(self.heads) for head in self.heads}
        self.previous = None

    def split_train(self, train, seed: int, val=None):
        """(clips to train on, held-out clips): the validation set when given, else --gb_holdout of the
        train split; the overfitting estimate compares it with as many training clips. Fixed by the seed."""
        if val is not None:
            self.holdout = val
            self.train_probe = held_out(train, sorted(shuffled_split(len(train), len(val) / len(train), seed)[0]))
            return train, val
        held, rest = shuffled_split(len(train), self.args.gb_holdout, seed)
        self.holdout = held_out(train, sorted(held))
        self.train_probe = held_out(train, sorted(rest[:len(held)]))
        return KeyedSubset(train, sorted(rest)), self.holdout

    def start_epoch(self, epoch, model, optimizer):
        if self.measure is None or (epoch - 1) % self.args.gb_every:
            return
        t, v = self.measure(self.train_probe), self.measure(self.holdout)
        current = {head: (t[f"loss{head}"], v[f"loss{head}"]) for head in self.heads}
        if self.previous is not None:
            self.weights = blending_weights(self.previous, current) or self.weights
        self.previous = current

    def loss(self, out, labels, epoch):
        logits = (out.logits, *(out.unimodal[m] for m in self.modalities))
        return sum(self.weights[head] * F.cross_entropy(x.float(), labels) for head, x in zip(self.heads, logits))

    def before_step(self, model, out, labels, epoch):
        return {f"gb_weight{head or '_fused'}": w for head, w in self.weights.items()}

    def state_dict(self):
        return {"weights": self.weights, "previous": self.previous}

    def load_state_dict(self, state):
        self.weights = state.get("weights", self.weights)
        self.previous = state.get("previous")
