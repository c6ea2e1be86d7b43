"""Audio-visual classifier: two encoders, a fusion module and (optionally) the MMCosine head."""
from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .encoders import AudioEncoder, VisualEncoder
from .fusion import FUSIONS
from .mmcosine import cosine_logits
from .mmtm import MMTMBridge

MID_FUSIONS = {"mmtm": MMTMBridge}  # optional cross-modal modules between the encoders' stages


class AVOutput(NamedTuple):
    feat_a: torch.Tensor
    feat_v: torch.Tensor
    logits_a: torch.Tensor
    logits_v: torch.Tensor
    logits: torch.Tensor
    # The fusion layer's plain linear output (weights as they are, plus the bias). It is `logits`
    # without MMCosine; with it, it is what the released main_CD.py's valid() scored as "Acc".
    logits_linear: Optional[torch.Tensor] = None


class AVClassifier(nn.Module):
    def __init__(self, n_classes: int, fusion: str = "concat", mmcosine: bool = False,
                 scaling: float = 10.0, audio_encoder: Optional[nn.Module] = None,
                 visual_encoder: Optional[nn.Module] = None):
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {fusion!r}; choose one of {sorted(FUSIONS)}")
        self.n_classes = n_classes
        self.fusion_name = fusion
        self.mmcosine = bool(mmcosine)
        self.scaling = float(scaling)
        self.audio_encoder = audio_encoder if audio_encoder is not None else AudioEncoder()
        self.visual_encoder = visual_encoder if visual_encoder is not None else VisualEncoder()
        self.fusion = FUSIONS[fusion](n_classes)
        if self.mmcosine:
            # MMCosine has no bias. As in the release, the layer keeps one at its initial value (it never
            # gets a gradient); frozen, it stays out of the optimizer and of DDP's gradient reduction.
            for bias in self.fusion.classifier_layer_biases():
                bias.requires_grad_(False)
        self.modalities = ("audio", "visual")
        self.mid_fusion_name: Optional[str] = None
        self.mid_fusion: Optional[nn.Module] = None

    def add_mid_fusion(self, name: str) -> None:
        """Insert cross-modal modules between the encoders' stages (e.g. MMTM for Greedy)."""
        if name not in MID_FUSIONS:
            raise ValueError(f"unknown mid-level fusion {name!r}; choose one of {sorted(MID_FUSIONS)}")
        self.mid_fusion_name = name
        self.mid_fusion = MID_FUSIONS[name](self.audio_encoder, self.visual_encoder)

    def keep_only(self, modality: str) -> None:
        """Uni-modal model with the same encoder and head: the other encoder is frozen and skipped,
        its features replaced by zeros, so the fused logits depend on `modality` alone."""
        dropped = self.visual_encoder if modality == "audio" else self.audio_encoder
        for p in dropped.parameters():
            p.requires_grad_(False)
        self.modalities = (modality,)

    def encode(self, audio, visual):
        """(a, v): the two encoders' 512-d features, before the fusion module."""
        if self.mid_fusion is not None:
            return self.mid_fusion(self.audio_encoder, self.visual_encoder, audio, visual)
        if self.modalities == ("audio",):
            a = self.audio_encoder(audio)
            return a, a.new_zeros(a.shape)
        if self.modalities == ("visual",):
            v = self.visual_encoder(visual)
            return v.new_zeros(v.shape), v
        return self.audio_encoder(audio), self.visual_encoder(visual)

    def classifier_weights(self):
        """(W_a, W_v), each (n_classes, d): the rows that score each modality's features."""
        return self.fusion.classifier_weights()

    def forward(self, audio: torch.Tensor, visual: torch.Tensor) -> AVOutput:
        feat_a, feat_v, fused = self.fusion(*self.encode(audio, visual))
        w_a, w_v = self.fusion.classifier_weights()
        if self.mmcosine:
            logits_a = cosine_logits(feat_a, w_a, self.scaling)
            logits_v = cosine_logits(feat_v, w_v, self.scaling)
            return AVOutput(feat_a, feat_v, logits_a, logits_v, logits_a + logits_v, fused)
        b_a, b_v = self.fusion.classifier_biases()
        return AVOutput(feat_a, feat_v, F.linear(feat_a, w_a, b_a), F.linear(feat_v, w_v, b_v), fused, fused)
