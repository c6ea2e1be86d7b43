"""DGL, Disentangled Gradient Learning (Wei, Luo, Luo, "Boosting Multimodal Learning via Disentangled Gradient
Learning", ICCV 2025), as the authors' shicaiwei123/ICCV2025-GDL @ b72a55f trains (main_dgl.py:100-154,
models/fusion_modules.py ConcatFusion_DGL / SumFusion_DGL), for any number of modalities.

The encoders learn only from the uni-modal losses, the fused head only from the fused loss:

    L = CE(head(f_1.detach(), ..., f_M.detach())) + alpha * sum_m CE(z_m),   z_m = W_m f_m + b_m,

z_m the fused head's slice for modality m on the live feature f_m with W_m, b_m DETACHED (under MMCosine the
cosine logits s cos(f_m, W_m) with W_m detached). One backward gives exactly what their two backward calls
give: alpha * grad(sum L_m) in the encoders (through the current head), grad CE(z) in the head. Then the norm
of all gradients is clipped to 40 (main_dgl.py:129).

Bias of the slices: their concat head scores fc_out([f_m, 0]) = W_m f_m + b, the whole bias b; the project's
slices (models/fusion.py) take b / M each so that they sum to the fused logits. --dgl_bias full (default) is
theirs; split the project's. Sum fusion scores fc_m(f_m) in both, the branch's own bias. The bias only shifts
z_m (it is detached), so the choice changes the encoders' gradients a little, nothing else.

Fusions: concat and sum, whose slices score each modality's own feature. Their FiLM_DGL / GatedFusion_DGL
score a modality against itself through a differently built FiLM (a bilinear one) and a one-directional gate;
our symmetric FiLM / gated have no such per-modality logit, so they are refused.
"""
from typing import Dict

import torch
import torch.nn.functional as F

from dataset.errors import DataError
from models.fusion import total
from models.mmcosine import cosine_logits

from ..flag_types import NONNEGATIVE
from .base import Method, encoder_params
from .scores import global_batch_mean

SLICED_FUSIONS = ("concat", "sum")


def check_sliced_fusion(method: str, model) -> None:
    if model.fusion_name not in SLICED_FUSIONS:
        raise DataError(f"--method {method} trains each encoder through its slice of the fused head, which scores "
                        f"that modality alone only in concat or sum fusion: use --fusion_method concat or sum "
                        f"(not {model.fusion_name})")


def slice_logits(model, feat: Dict[str, torch.Tensor], full_bias: bool, detach_head: bool) -> Dict[str, torch.Tensor]:
    """{m: z_m}: the fused head's slice for each modality on feat[m], in at least float32. `full_bias`: a concat head's
    whole bias in every slice (the authors' fc_out([f_m, 0])), else the project's b / M; `detach_head`: the
    head's weights carry no gradient."""
    hold = (lambda t: t.detach()) if detach_head else (lambda t: t)
    weights = model.fusion.classifier_weights()
    if model.mmcosine:  # cosine logits have no bias
        return {m: cosine_logits(feat[m], hold(weights[m]), model.scaling) for m in model.names}
    biases = model.fusion.classifier_biases()
    if full_bias and model.fusion_name == "concat":
        biases = {m: model.fusion.fc_out.bias for m in model.names}
    return {m: F.linear(at_least_float32(feat[m]), hold(weights[m]), hold(biases[m])) for m in model.names}


def at_least_float32(t: torch.Tensor) -> torch.Tensor:
    """bf16 / fp16 features (autocast) in float32, for the float32 head outside autocast; float64 stays."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


def clip_gradients(model, max_norm: float) -> float:
    """clip_grad_norm_ over every parameter (max_norm 0: none); returns the norm before clipping."""
    params = [p for p in model.parameters() if p.grad is not None]
    if max_norm > 0:
        return torch.nn.utils.clip_grad_norm_(params, max_norm).item()
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params])).item()


def scale_encoder_gradients(model, factors: Dict[str, float]) -> None:
    """Every gradient of encoder m (all its parameters) times factors[m]."""
    for m, factor in factors.items():
        for p in encoder_params(model, m):
            if p.grad is not None:
                p.grad.mul_(factor)


class DGL(Method):
    name = "dgl"

    @classmethod
    def add_args(cls, group, modalities):
        group.add_argument("--dgl_alpha", type=NONNEGATIVE, default=4.0,
                           help="DGL: weight of the uni-modal losses, the encoders' only loss (the authors' CREMA-D "
                                "script: 4 or 5; Kinetics-Sounds 2 or 3)")
        group.add_argument("--dgl_clip", type=NONNEGATIVE, default=40.0,
                           help="DGL: clip the norm of all gradients to this (the authors' 40; 0: no clipping)")
        group.add_argument("--dgl_bias", choices=["full", "split"], default="full",
                           help="DGL: bias of a concat head's uni-modal slices: full = the whole bias (the authors' "
                                "fc_out([f_m, 0])), split = 1/M of it each (the project's slices)")

    def configure_model(self, model):
        check_sliced_fusion(self.name, model)

    def losses(self, model, out, labels):
        """(fused loss on detached features, {m: uni-modal loss through the detached head})."""
        enc = {m: out.enc[m] for m in model.names}
        # float32: under autocast the features are bf16 / fp16, and the head runs here outside autocast
        fused = model.head({m: at_least_float32(f.detach()) for m, f in enc.items()}).logits
        sliced = slice_logits(model, enc, self.args.dgl_bias == "full", detach_head=True)
        return (F.cross_entropy(fused.float(), labels),
                {m: F.cross_entropy(sliced[m], labels) for m in self.modalities})

    def train_step(self, step):
        out = step.forward()
        model = step.raw_model
        fused, unimodal = self.losses(model, out, step.labels)
        loss = fused + self.args.dgl_alpha * total(unimodal.values())
        step.check_finite(loss)
        self.logged = {f"dgl_loss_{self.tags[m]}": global_batch_mean(value, step.batch_size)
                       for m, value in unimodal.items()}
        extras = step.backward_and_step(loss, lambda: self.before_step(model, out, step.labels, step.epoch))
        return out, extras

    def before_step(self, model, out, labels, epoch):
        return {**self.logged, "dgl_grad_norm": clip_gradients(model, self.args.dgl_clip)}
