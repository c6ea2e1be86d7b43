"""Greedy (Wu, Jastrzebski, Cho, Geras, ICML 2022): balanced multi-modal learning by re-balancing
steps driven by the conditional learning speeds of the modalities. Defined for two modalities (MMTM
between two trunks; the authors' d compares two branches): other counts are refused.

The model gets MMTM modules between the encoders' stages (models/mmtm.py): each modality has
its own branch (its encoder, "main") and a cross-modal path into it (its MMTM gates, "bypass").
After every backward pass outside re-balancing, the relative update speed
||grad||^2 / ||weight||^2 of each group is added to a running sum M, and
    BDR_m = log10(M_bypass_m / M_main_m),    d = BDR_first - BDR_second
(first, second: the dataset's modalities in order, audio and visual on the audio-visual scripts).
BDR_m large means branch m learns more through the other modality than from its own input.
From epoch --greedy_starts on, when |d| > --greedy_epsilon, the next --greedy_window steps are
re-balancing steps for that modality (d > 0: the first, d < 0: the second): its MMTM gates are frozen at
their running average, so it receives no cross-modal information and has to learn from its own
input. This follows the authors' released training callback; their code, unlike ours, also
froze the gates during evaluation while a re-balancing window was open.
"""
import math

import torch
import torch.nn.functional as F
from torch.nn.utils import get_total_norm

from dataset.errors import DataError

from .base import Method


def relative_speed(weights, grads) -> torch.Tensor:
    """sum ||grad||^2 / sum ||weight||^2 over the tensors (a missing gradient counts as zero), as a
    0-d tensor on the weights' device, so a step needs one host sync for all groups."""
    grads = [g.detach() for g in grads if g is not None]
    grad_sq = get_total_norm(grads).float() ** 2 if grads else torch.zeros((), device=weights[0].device)
    return grad_sq / (get_total_norm([w.detach() for w in weights]).float() ** 2).clamp(min=1e-30)


class Greedy(Method):
    name = "greedy"
    n_modalities = 2

    def __init__(self, args, *context):
        super().__init__(args, *context)
        self.speed_sums = {f"{part}_{m}": 0.0 for part in ("main", "bypass") for m in self.modalities}
        self.rebalancing, self.rebalanced_steps, self.cut = False, 0, None
        self.speed_gap = 0.0

    def configure_model(self, model) -> None:
        try:
            model.add_mid_fusion("mmtm")
        except ValueError as err:  # e.g. the VoxCeleb encoders have no ResNet trunk to interleave
            raise DataError(f"--method greedy: {err}") from None

    def _update_speed_gap(self, model) -> float:
        bypass = model.mid_fusion.parameter_groups()
        head_weights, head_grads = model.fusion.classifier_weights(), model.fusion.classifier_grads()
        groups = {}
        for m in self.modalities:
            encoder = list(model.encoders[m].parameters())
            weights, grads = encoder, [p.grad for p in encoder]
            if self.args.greedy_main_with_head:  # as nyukat: a branch's own classifier is part of its main path
                weights, grads = weights + [head_weights[m]], grads + [head_grads[m]]
            groups[f"main_{m}"] = (weights, grads)
            groups[f"bypass_{m}"] = (bypass[m], [p.grad for p in bypass[m]])
        speeds = dict(zip(groups, torch.stack([relative_speed(*g) for g in groups.values()]).tolist()))
        if all(math.isfinite(v) for v in speeds.values()):  # fp16 overflow: the scaler skips this step too
            for key, value in speeds.items():
                self.speed_sums[key] += value
        bdr = {m: math.log10(max(self.speed_sums[f"bypass_{m}"], 1e-30) / max(self.speed_sums[f"main_{m}"], 1e-30))
               for m in self.modalities}
        first, second = self.modalities
        self.speed_gap = bdr[first] - bdr[second]
        return self.speed_gap

    def loss(self, out, labels, epoch):
        if self.args.greedy_loss == "branches":  # nyukat: each branch's cross-entropy, summed
            first, second = self.modalities
            return F.cross_entropy(out.unimodal[first].float(), labels) + F.cross_entropy(out.unimodal[second].float(),
                                                                                          labels)
        return super().loss(out, labels, epoch)

    def before_step(self, model, out, labels, epoch):
        used = {f"greedy_rebalancing_{m}": float(model.mid_fusion.cut == m) for m in self.modalities}
        with torch.no_grad():
            if epoch < self.args.greedy_starts:
                self._update_speed_gap(model)
                self.rebalancing, self.cut = False, None
            elif not self.rebalancing:
                gap = self._update_speed_gap(model)
                if abs(gap) > self.args.greedy_epsilon:
                    self.rebalancing, self.rebalanced_steps = True, 0
                    self.cut = self.modalities[0] if gap > 0 else self.modalities[1]
            else:
                self.rebalanced_steps += 1
                if self.rebalanced_steps == self.args.greedy_window:
                    self.rebalancing, self.cut = False, None
        model.mid_fusion.cut = self.cut if self.rebalancing else None  # applies from the next forward on
        return {**used, "greedy_speed_gap": self.speed_gap}

    def state_dict(self):
        return {"speed_sums": dict(self.speed_sums), "rebalancing": self.rebalancing,
                "rebalanced_steps": self.rebalanced_steps, "cut": self.cut, "speed_gap": self.speed_gap}

    def load_state_dict(self, state):
        self.speed_sums.update(state.get("speed_sums", {}))
        self.rebalancing = state.get("rebalancing", False)
        self.rebalanced_steps = state.get("rebalanced_steps", 0)
        self.cut, self.speed_gap = state.get("cut"), state.get("speed_gap", 0.0)

    def start_epoch(self, epoch, model, optimizer):
        # After a resume the restored state must reach the model before the first forward.
        model.mid_fusion.cut = self.cut if self.rebalancing else None
        return {}

    def resume_epoch(self, epoch, model):
        self.start_epoch(epoch, model, None)
