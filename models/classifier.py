"""The multi-modal classifier: one encoder per modality (keyed by the dataset's modality names, in its order),
a fusion module and (optionally) the MMCosine head. `model(inputs)` maps {name: input} to a ModalOutput whose
per-modality parts are dicts keyed by the same names."""
from typing import Dict, NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .encoders import FEATURE_DIM
from .fusion import FUSIONS, PAIRWISE, GeodesicMixup, common_dim, total
from .heads import BoostedLearners, SharedClassifier, build_combiner
from .mmcosine import cosine_logits
from .mmtm import MMTMBridge

MID_FUSIONS = {"mmtm": MMTMBridge}  # optional cross-modal modules between the encoders' stages

Tensors = Dict[str, torch.Tensor]


class ModalOutput(NamedTuple):
    feat: Tensors          # per modality: the features the fused head scores
    unimodal: Tensors      # per modality: its logits (its part of the fused head)
    logits: torch.Tensor   # fused
    # The fusion layer's plain linear output (weights as they are, plus the bias). It is `logits`
    # without MMCosine; with it, it is what the released main_CD.py's valid() scored as "Acc".
    logits_linear: Optional[torch.Tensor] = None
    # The encoders' features before the fusion module (what UMT distils and PMR's prototypes average).
    enc: Optional[Tensors] = None
    # Separate uni-modal heads on the encoder features, where a method added them (MMPareto).
    heads: Optional[Tensors] = None
    # The fused head's logits before a method's combiner turned them into `logits` (= logits without a combiner).
    fused: Optional[torch.Tensor] = None


def check_fusion(fusion: str, n_modalities: int) -> None:
    """film and gated are pairwise: refused (ValueError, one line) for any other number of modalities."""
    if fusion not in FUSIONS:
        raise ValueError(f"unknown fusion {fusion!r}; choose one of {sorted(FUSIONS)}")
    if fusion in PAIRWISE and n_modalities != 2:
        fits = ", ".join(f for f in sorted(FUSIONS) if f not in PAIRWISE)
        raise ValueError(f"--fusion_method {fusion} is defined for two modalities and this dataset has "
                         f"{n_modalities}: use {fits}")


class MultiModalClassifier(nn.Module):
    def __init__(self, n_classes: int, encoders: Dict[str, nn.Module], fusion: str = "concat",
                 mmcosine: bool = False, scaling: float = 10.0):
        super().__init__()
        check_fusion(fusion, len(encoders))
        self.n_classes = n_classes
        self.fusion_name = fusion
        self.mmcosine = bool(mmcosine)
        self.scaling = float(scaling)
        self.encoders = nn.ModuleDict(encoders)
        self.names = tuple(encoders)              # every modality of the dataset, in order
        # each encoder's feature size (`out_dim`; the ResNets' 512 where an encoder does not say)
        self.dims = {m: int(getattr(e, "out_dim", FEATURE_DIM)) for m, e in encoders.items()}
        self.fusion = FUSIONS[fusion](n_classes, self.names, self.dims)
        self._freeze_cosine_biases()
        self.modalities = self.names              # the ones it trains on (one for a uni-modal baseline)
        self.mid_fusion_name: Optional[str] = None
        self.mid_fusion: Optional[nn.Module] = None
        self.unimodal_heads: Optional[nn.ModuleDict] = None
        self.head_spec: Optional[dict] = None     # a method's head (models/heads.py), kept in checkpoints
        self.combiner: Optional[nn.Module] = None
        # Set by a method for training steps: {name: enc} -> {name: enc} between encoders and fusion (OPM).
        self.feature_transform = None
        self.frozen: tuple = ()                   # encoders kept frozen and in eval mode (freeze_encoders)

    def _freeze_cosine_biases(self) -> None:
        if self.mmcosine:
            # MMCosine has no bias. As in the release, the layer keeps one at its initial value (it never
            # gets a gradient); frozen, it stays out of the optimizer and of DDP's gradient reduction.
            for bias in self.fusion.classifier_layer_biases():
                bias.requires_grad_(False)

    def feature_dims(self) -> Dict[str, int]:
        """{name: the size of the features the fused head scores}."""
        return {m: w.shape[1] for m, w in self.fusion.classifier_weights().items()}

    def feature_dim(self) -> int:
        """The one feature size of every modality (heads shared by the modalities need it)."""
        return common_dim(self.feature_dims(), self.names, "this head")

    def set_head(self, spec: dict) -> None:
        """A method's head (models/heads.py): "shared" puts one classifier for every modality's features in
        place of the fusion module, "combine" decides how the modalities' logits make the fused ones."""
        self.head_spec = spec
        if spec.get("shared") is not None:
            self.fusion = SharedClassifier(self.n_classes, self.names, self.feature_dim(), **spec["shared"])
            self._freeze_cosine_biases()
        if spec.get("geodesic") is not None:  # IPRM: the slerp of the modalities' features in place of the fusion
            self.fusion = GeodesicMixup(self.n_classes, self.names, self.feature_dim(), **spec["geodesic"])
            self._freeze_cosine_biases()
        if spec.get("learners") is not None:  # AUG: per-modality learners scored by one shared classifier
            self.fusion = BoostedLearners(self.n_classes, self.names, **spec["learners"])
            self._freeze_cosine_biases()
        if spec.get("combine") is not None:
            self.combiner = build_combiner(self.n_classes, spec["combine"], len(self.names))

    def add_mid_fusion(self, name: str) -> None:
        """Insert cross-modal modules between the encoders' stages (e.g. MMTM for Greedy)."""
        if name not in MID_FUSIONS:
            raise ValueError(f"unknown mid-level fusion {name!r}; choose one of {sorted(MID_FUSIONS)}")
        self.mid_fusion_name = name
        self.mid_fusion = MID_FUSIONS[name](self.encoders)

    def add_unimodal_heads(self) -> None:
        """A linear classifier on each encoder's features besides the fused head (MMPareto's head_audio /
        head_video); its logits come out as `heads`."""
        self.unimodal_heads = nn.ModuleDict({m: nn.Linear(d, self.n_classes) for m, d in self.feature_dims().items()})

    def freeze_encoders(self, names) -> None:
        """Encoders that neither learn nor move their BatchNorm statistics (DI-MML's second stage trains a head on
        the first stage's encoders): no gradient, and eval mode even while the model trains."""
        self.frozen = tuple(names)
        for name in self.frozen:
            for p in self.encoders[name].parameters():
                p.requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        for name in getattr(self, "frozen", ()):
            self.encoders[name].eval()
        return self

    def keep_only(self, modality: str) -> None:
        """Uni-modal model with the same encoder and head: the other encoders are frozen and skipped,
        their features replaced by zeros, so the fused logits depend on `modality` alone."""
        for name, encoder in self.encoders.items():
            if name != modality:
                for p in encoder.parameters():
                    p.requires_grad_(False)
        self.modalities = (modality,)

    def encode(self, inputs: Tensors) -> Tensors:
        """{name: the encoder's features}, before the fusion module."""
        if self.mid_fusion is not None:
            return self.mid_fusion(self.encoders, inputs)
        if len(self.modalities) == 1:
            kept = self.modalities[0]
            feat = self.encoders[kept](inputs[kept])
            return {m: feat if m == kept else feat.new_zeros(feat.shape[0], self.dims[m]) for m in self.names}
        return {m: self.encoders[m](inputs[m]) for m in self.names}

    def classifier_weights(self) -> Tensors:
        """{name: W_m (n_classes, d)}: the rows that score each modality's features."""
        return self.fusion.classifier_weights()

    def unimodal_logits(self, feat: Tensors) -> Tensors:
        """Each modality's part of the fused head on the fusion module's features."""
        weights = self.fusion.classifier_weights()
        if self.mmcosine:
            return {m: cosine_logits(feat[m], weights[m], self.scaling) for m in self.names}
        biases = self.fusion.classifier_biases()
        return {m: F.linear(feat[m], weights[m], biases[m]) for m in self.names}

    def forward(self, inputs: Tensors) -> ModalOutput:
        enc = self.encode(inputs)
        if self.feature_transform is not None and self.training:
            enc = self.feature_transform(enc)
        return self.head(enc)

    def head(self, enc: Tensors) -> ModalOutput:
        """Everything after the encoders: fusion, uni-modal and fused logits (and the extra heads), from the
        encoders' features, e.g. with some of them zeroed or detached."""
        feat, fused = self.fusion(enc)
        unimodal = self.unimodal_logits(feat)
        logits = fused
        if self.mmcosine:  # the sum of the per-modality cosine logits, or the fusion's own cosine (the geodesic mix)
            joint = getattr(self.fusion, "cosine_logits", None)
            logits = joint(feat, self.scaling) if joint is not None else total(unimodal[m] for m in self.names)
        heads = {m: self.unimodal_heads[m](enc[m]) for m in self.names} if self.unimodal_heads is not None else None
        before = logits
        if self.combiner is not None:
            unimodal, logits = self.combiner(unimodal, logits, heads)
        return ModalOutput(feat, unimodal, logits, fused, enc, heads, before)
