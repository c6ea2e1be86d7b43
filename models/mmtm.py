"""Mid-level fusion for the Greedy method (Wu, Jastrzebski, Cho, Geras, ICML 2022): MMTM
(multi-modal transfer modules, Joze et al. 2020) between the stages of the two ResNet trunks.

After layer2, layer3 and layer4, each module squeezes both modalities' feature maps to
channel means, mixes them through one shared layer, and excites each modality's channels with
a sigmoid gate computed from both. These gates are the only cross-modal path, so a modality
can be made to learn from itself alone by replacing its gates with their running average
(`cut`), as Greedy's re-balancing steps do. Gates are averaged over every training forward.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

STAGES = ((0, 6), (6, 7), (7, 8))  # trunk slices ending after layer2, layer3, layer4
MODALITIES = ("audio", "visual")


class MMTM(nn.Module):
    def __init__(self, channels_a: int, channels_v: int, ratio: int = 4):
        super().__init__()
        hidden = int(2 * (channels_a + channels_v) / ratio)
        self.squeeze = nn.Linear(channels_a + channels_v, hidden)
        self.excite_audio = nn.Linear(hidden, channels_a)
        self.excite_visual = nn.Linear(hidden, channels_v)
        self.register_buffer("mean_gate_audio", torch.full((channels_a,), 0.5))
        self.register_buffer("mean_gate_visual", torch.full((channels_v,), 0.5))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def forward(self, maps_a: torch.Tensor, maps_v: torch.Tensor, batch: int, cut: Optional[str] = None):
        """maps_a (B, Ca, F', T'); maps_v (B*T, Cv, H', W') with the frames folded into the batch."""
        squeezed_a = maps_a.float().mean(dim=(2, 3))
        squeezed_v = maps_v.float().reshape(batch, -1, maps_v.shape[1], maps_v.shape[2] * maps_v.shape[3]).mean(dim=(1, 3))
        hidden = F.relu(self.squeeze(torch.cat([squeezed_a, squeezed_v], dim=1)))
        gates = {"audio": torch.sigmoid(self.excite_audio(hidden)), "visual": torch.sigmoid(self.excite_visual(hidden))}
        live = dict(gates)
        if cut is not None:
            # The mean of the forwards before this one, so this batch's other modality cannot leak in. The live
            # gate keeps its place in the graph with zero weight: every parameter still gets a (zero) gradient,
            # which DDP needs.
            gates[cut] = getattr(self, f"mean_gate_{cut}").clone().expand_as(live[cut]) + 0.0 * live[cut]
        if self.training:
            with torch.no_grad():  # cumulative mean over n forwards: mean + (x - mean) / (n + 1), no host sync
                weight = 1.0 / (self.steps + 1).float()
                for m in MODALITIES:
                    getattr(self, f"mean_gate_{m}").lerp_(live[m].mean(0).float(), weight)
                self.steps += 1
        gate_v = gates["visual"].repeat_interleave(maps_v.shape[0] // batch, dim=0)
        return (maps_a * gates["audio"].to(maps_a.dtype)[:, :, None, None],
                maps_v * gate_v.to(maps_v.dtype)[:, :, None, None])


class MMTMBridge(nn.Module):
    """Runs both trunks stage by stage with an MMTM after layer2, layer3 and layer4."""

    def __init__(self, audio_encoder: nn.Module, visual_encoder: nn.Module):
        super().__init__()
        for encoder in (audio_encoder, visual_encoder):
            if not hasattr(encoder, "trunk") or len(encoder.trunk) != 8:
                raise ValueError("MMTM fusion needs the ResNet trunk encoders (main_CD.py / main_SSW.py)")
        channels = [(audio_encoder.trunk[end - 1][-1].conv1.out_channels,
                     visual_encoder.trunk[end - 1][-1].conv1.out_channels) for _, end in STAGES]
        self.mmtms = nn.ModuleList(MMTM(ca, cv) for ca, cv in channels)
        self.cut: Optional[str] = None  # set by the Greedy method; applies to training forwards only

    def forward(self, audio_encoder, visual_encoder, audio: torch.Tensor, visual: torch.Tensor):
        batch = audio.shape[0]
        a, v = audio_encoder.fold(audio), visual_encoder.fold(visual)
        cut = self.cut if self.training else None
        for (start, end), mmtm in zip(STAGES, self.mmtms):
            a, v = audio_encoder.trunk[start:end](a), visual_encoder.trunk[start:end](v)
            a, v = mmtm(a, v, batch, cut)
        return audio_encoder.pool(a, batch), visual_encoder.pool(v, batch)

    def parameter_groups(self):
        """{modality: parameters on its cross-modal path}: the shared squeeze layers count for both."""
        groups = {m: [] for m in MODALITIES}
        for mmtm in self.mmtms:
            for m in MODALITIES:
                groups[m] += list(mmtm.squeeze.parameters()) + list(getattr(mmtm, f"excite_{m}").parameters())
        return groups
