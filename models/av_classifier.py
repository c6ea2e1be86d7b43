"""Audio-visual classifier: two encoders, a fusion module and (optionally) the MMCosine head."""
from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .encoders import AudioEncoder, VisualEncoder
from .fusion import FUSIONS
from .heads import SharedClassifier, build_combiner
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
    # The encoders' features before the fusion module (what UMT distils and PMR's prototypes average).
    enc_a: Optional[torch.Tensor] = None
    enc_v: Optional[torch.Tensor] = None
    # Separate uni-modal heads on enc_a / enc_v, where a method added them (MMPareto).
    head_a: Optional[torch.Tensor] = None
    head_v: Optional[torch.Tensor] = None


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
        self._freeze_cosine_biases()
        self.modalities = ("audio", "visual")
        self.mid_fusion_name: Optional[str] = None
        self.mid_fusion: Optional[nn.Module] = None
        self.unimodal_heads: Optional[nn.ModuleDict] = None
        self.head_spec: Optional[dict] = None     # a method's head (models/heads.py), kept in checkpoints
        self.combiner: Optional[nn.Module] = None
        # Set by a method for training steps: (enc_a, enc_v) -> (enc_a, enc_v) between encoders and fusion (OPM).
        self.feature_transform = None

    def _freeze_cosine_biases(self) -> None:
        if self.mmcosine:
            # MMCosine has no bias. As in the release, the layer keeps one at its initial value (it never
            # gets a gradient); frozen, it stays out of the optimizer and of DDP's gradient reduction.
            for bias in self.fusion.classifier_layer_biases():
                bias.requires_grad_(False)

    def set_head(self, spec: dict) -> None:
        """A method's head (models/heads.py): "shared" puts one classifier for both modalities' features in
        place of the fusion module, "combine" decides how the two modalities' logits make the fused ones."""
        self.head_spec = spec
        if spec.get("shared") is not None:
            dim = self.fusion.classifier_weights()[0].shape[1]
            self.fusion = SharedClassifier(self.n_classes, dim, **spec["shared"])
            self._freeze_cosine_biases()
        if spec.get("combine") is not None:
            self.combiner = build_combiner(self.n_classes, spec["combine"])

    def add_mid_fusion(self, name: str) -> None:
        """Insert cross-modal modules between the encoders' stages (e.g. MMTM for Greedy)."""
        if name not in MID_FUSIONS:
            raise ValueError(f"unknown mid-level fusion {name!r}; choose one of {sorted(MID_FUSIONS)}")
        self.mid_fusion_name = name
        self.mid_fusion = MID_FUSIONS[name](self.audio_encoder, self.visual_encoder)

    def add_unimodal_heads(self) -> None:
        """A linear classifier on each encoder's features besides the fused head (MMPareto's head_audio /
        head_video); its logits come out as head_a / head_v."""
        dim = self.fusion.classifier_weights()[0].shape[1]
        self.unimodal_heads = nn.ModuleDict({m: nn.Linear(dim, self.n_classes) for m in ("audio", "visual")})

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

    def unimodal_logits(self, feat_a: torch.Tensor, feat_v: torch.Tensor):
        """(logits_a, logits_v): each modality's part of the fused head on the fusion module's features."""
        w_a, w_v = self.fusion.classifier_weights()
        if self.mmcosine:
            return cosine_logits(feat_a, w_a, self.scaling), cosine_logits(feat_v, w_v, self.scaling)
        b_a, b_v = self.fusion.classifier_biases()
        return F.linear(feat_a, w_a, b_a), F.linear(feat_v, w_v, b_v)

    def forward(self, audio: torch.Tensor, visual: torch.Tensor) -> AVOutput:
        enc_a, enc_v = self.encode(audio, visual)
        if self.feature_transform is not None and self.training:
            enc_a, enc_v = self.feature_transform(enc_a, enc_v)
        return self.head(enc_a, enc_v)

    def head(self, enc_a: torch.Tensor, enc_v: torch.Tensor) -> AVOutput:
        """Everything after the encoders: fusion, uni-modal and fused logits (and the extra heads), from the
        encoders' features, e.g. with one of them zeroed or detached."""
        feat_a, feat_v, fused = self.fusion(enc_a, enc_v)
        logits_a, logits_v = self.unimodal_logits(feat_a, feat_v)
        logits = logits_a + logits_v if self.mmcosine else fused
        if self.combiner is not None:
            logits_a, logits_v, logits = self.combiner(logits_a, logits_v, logits)
        heads = (self.unimodal_heads["audio"](enc_a), self.unimodal_heads["visual"](enc_v)) \
            if self.unimodal_heads is not None else (None, None)
        return AVOutput(feat_a, feat_v, logits_a, logits_v, logits, fused, enc_a, enc_v, *heads)
