"""Mid-level fusion for the Greedy method (Wu, Jastrzebski, Cho, Geras, ICML 2022): MMTM
(multi-modal transfer modules, Joze et al. 2020) between the stages of two ResNet trunks (any two modalities).

After layer2, layer3 and layer4, each module squeezes both modalities' feature maps to
channel means, mixes them through one shared layer, and excites each modality's channels with
a sigmoid gate computed from both. These gates are the only cross-modal path, so a modality
can be made to learn from itself alone by replacing its gates with their running average
(`cut`), as Greedy's re-balancing steps do. Gates are averaged over every training forward.
"""
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import nn

STAGES = ((0, 6), (6, 7), (7, 8))  # trunk slices ending after layer2, layer3 and layer4


class MMTM(nn.Module):
    """One transfer module between two modalities' stage maps. Its layers and buffers are named after the
    modalities (excite_audio, mean_gate_visual): checkpoints of the audio-visual runs keep their keys."""

    def __init__(self, channels: Dict[str, int], ratio: int = 4):
        super().__init__()
        self.names = tuple(channels)
        hidden = int(2 * sum(channels.values()) / ratio)
        self.squeeze = nn.Linear(sum(channels.values()), hidden)
        for m, c in channels.items():
            setattr(self, f"excite_{m}", nn.Linear(hidden, c))
        for m, c in channels.items():
            self.register_buffer(f"mean_gate_{m}", torch.full((c,), 0.5))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def forward(self, maps: Dict[str, torch.Tensor], encoders, batch: int, cut: Optional[str] = None):
        """maps {name: stage maps (B*T, C, ...)}; each encoder's `channel_means` squeezes its own (frames folded
        into the batch are averaged too)."""
        squeezed = [encoders[m].channel_means(maps[m], batch) for m in self.names]
        hidden = F.relu(self.squeeze(torch.cat(squeezed, dim=1)))
        gates = {m: torch.sigmoid(getattr(self, f"excite_{m}")(hidden)) for m in self.names}
        live = dict(gates)
        if cut is not None:
            # The mean of the forwards before this one, so this batch's other modality cannot leak in. The live
            # gate keeps its place in the graph with zero weight: every parameter still gets a (zero) gradient,
            # which DDP needs.
            gates[cut] = getattr(self, f"mean_gate_{cut}").clone().expand_as(live[cut]) + 0.0 * live[cut]
        if self.training:
            with torch.no_grad():  # cumulative mean over n forwards: mean + (x - mean) / (n + 1), no host sync
                weight = 1.0 / (self.steps + 1).float()
                for m in self.names:
                    getattr(self, f"mean_gate_{m}").lerp_(live[m].mean(0).float(), weight)
                self.steps += 1
        out = {}
        for m in self.names:
            gate = gates[m].repeat_interleave(maps[m].shape[0] // batch, dim=0)  # one gate for a clip's frames
            out[m] = maps[m] * gate.to(maps[m].dtype)[:, :, None, None]
        return out


class MMTMBridge(nn.Module):
    """Runs two ResNet trunks stage by stage with an MMTM after layer2, layer3 and layer4."""

    def __init__(self, encoders):
        super().__init__()
        self.names = tuple(encoders)
        if len(self.names) != 2:
            raise ValueError(f"MMTM mid-level fusion joins two modalities, not {len(self.names)}")
        for encoder in encoders.values():
            if not hasattr(encoder, "trunk") or len(encoder.trunk) != 8 or not hasattr(encoder, "channel_means"):
                raise ValueError("MMTM fusion needs two 2-D ResNet trunk encoders (main_CD.py / main_SSW.py / "
                                 "main_UCF.py --recipe balancebenchmark)")
        self.mmtms = nn.ModuleList(
            MMTM({m: encoders[m].trunk[end - 1][-1].conv1.out_channels for m in self.names}) for _, end in STAGES)
        self.cut: Optional[str] = None  # set by the Greedy method; applies to training forwards only

    def forward(self, encoders, inputs: Dict[str, torch.Tensor]):
        batch = inputs[self.names[0]].shape[0]
        maps = {m: encoders[m].fold(inputs[m]) for m in self.names}
        cut = self.cut if self.training else None
        for (start, end), mmtm in zip(STAGES, self.mmtms):
            maps = {m: encoders[m].trunk[start:end](maps[m]) for m in self.names}
            maps = mmtm(maps, encoders, batch, cut)
        return {m: encoders[m].pool(maps[m], batch) for m in self.names}

    def parameter_groups(self):
        """{modality: parameters on its cross-modal path}: the shared squeeze layers count for both."""
        groups = {m: [] for m in self.names}
        for mmtm in self.mmtms:
            for m in self.names:
                groups[m] += list(mmtm.squeeze.parameters()) + list(getattr(mmtm, f"excite_{m}").parameters())
        return groups
