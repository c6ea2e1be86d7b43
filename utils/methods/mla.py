"""MLA, Multimodal Learning with Alternating Unimodal Adaptation (Zhang et al., CVPR 2024), as the
authors' main.py trains with --gs_flag (Cecile-hi/Multimodal-Learning-with-Alternating-Unimodal-Adaptation).

The concat layer becomes one linear head H shared by the modalities (512 -> C; their ConcatFusion with
input_dim 512). Per batch: one forward of every encoder, then for each modality in the dataset's order
CE(H(f_m)), its gradient on that encoder and H, and an optimizer step: M steps per batch, each through the
head the steps before it have just moved (their audio, visual steps; audio, visual, text with --modal3).

H's weight gradient may be projected (their GSPlugin.before_update, utils/utils.py, and BalanceBenchmark's
copy of it): a projector P (512 x 512) starts as the identity; per update, r = the batch's mean feature
(1 x d), k = P r^T (d x 1), and

    P <- P - (k k^T) / (a + k r),   P <- P / |P|_F,   a = 0.1^(1 + i / len(loader))

where k r is the d x d outer product, so the division is element by element (not the scalar a + r k of
OWM, the rule it descends from); then grad <- grad P^T, skipped for the very first update (their
exp_count 0). In the authors' public code it never fires: it waits for a parameter named
"module.weight", and the head's named_parameters() yields "weight". --mla_projection off (the default) is
that code; "replace" their update as if the name matched (grad P^T); "add" BalanceBenchmark's, which
matches "weight" and adds: grad + grad P^T.

At test time the heads' logits are mixed by entropy, w_m proportional to exp(H_max - H_m)
(models/heads.py: per sample as in the paper and BalanceBenchmark; "batch" is the authors' code, which
takes the softmax over the batch and one weight per batch, for two modalities as for three; "fixed" their
fixed fusion of two modalities, 0.55 for the first: --mla_audio_weight on the audio-visual scripts).
"""
import torch
import torch.nn.functional as F

from dataset.errors import DataError

from .. import distributed
from ..flag_types import PROBABILITY
from .base import Method, encoder_params
from .scores import global_batch_mean


def weight_flag(modalities) -> str:
    """The flag (and args attribute) of the fixed fusion's weight, named after the first modality: mla_audio_weight
    on the audio-visual scripts."""
    return f"mla_{modalities[0]}_weight"


def project_gradient(projector: torch.Tensor, r: torch.Tensor, grad: torch.Tensor, alpha: float, mode: str):
    """One GSPlugin update from the batch's mean feature r (1, d): the new projector and the head's new
    weight gradient. As their torch.mm(k, r), k @ r is (d, d): the division is element-wise."""
    k = projector @ r.t()
    projector = projector - (k @ k.t()) / (alpha + k @ r)
    projector = projector / projector.norm()
    projected = grad @ projector.t()
    return projector, projected if mode == "replace" else grad + projected


class MLA(Method):
    name = "mla"
    owns_backward = True

    @classmethod
    def add_args(cls, group, modalities):
        first = weight_flag(modalities)
        group.add_argument("--mla_fusion", choices=["sample", "batch", "fixed"], default="sample",
                           help="MLA: test-time fusion: entropy weights per sample (paper, BalanceBenchmark), per batch "
                                f"(the authors' calculate_entropy), or fixed (two modalities: --{first})")
        group.add_argument(f"--{first}", type=PROBABILITY, default=0.55,
                           help=f"MLA: {modalities[0]} weight of --mla_fusion fixed, the other modality's is the "
                                "rest (the authors' main() passes 0.55 for audio)")
        group.add_argument("--mla_projection", choices=["off", "replace", "add"], default="off",
                           help="MLA: head-gradient projection by their GSPlugin's projector P: off (the authors' public code, "
                                "where it never fires), replace (grad P^T, their code had its name check matched), "
                                "add (BalanceBenchmark: grad + grad P^T)")

    def __init__(self, args, *context):
        super().__init__(args, *context)
        self.projector, self.updates = None, 0
        if getattr(args, "mla_fusion", None) == "fixed" and len(self.modalities) != 2:
            raise DataError(f"--mla_fusion fixed weighs two modalities (--{weight_flag(self.modalities)} and the rest) "
                            f"and this dataset has {len(self.modalities)}: use --mla_fusion sample or batch")

    def configure_model(self, model):
        if model.fusion_name != "concat" or model.mid_fusion is not None:
            raise DataError(f"--method mla trains one head shared by the modalities in place of the concat layer (the "
                            f"authors' --gs_flag model): use --fusion_method concat (not {model.fusion_name})")
        # the head spec's key "audio_weight" is the first modality's weight (models/heads.py)
        weight = getattr(self.args, weight_flag(self.modalities))
        model.set_head({"shared": {"hidden": 0}, "combine": {"name": "entropy", "mode": self.args.mla_fusion,
                                                             "audio_weight": weight}})

    def train_step(self, step):
        if not self.active(step.epoch):
            return super().train_step(step)
        raw = step.raw_model
        out = step.forward(raw=True)
        head = [p for p in raw.fusion.parameters() if p.requires_grad]
        logged = {}
        for i, m in enumerate(self.modalities):
            features = out.enc[m]
            if i == 0:
                logits = out.unimodal[m]
            else:  # through the head as the steps before this one left it
                with step.precision.autocast():
                    enc = {n: x if n == m else x.detach() for n, x in out.enc.items()}
                    logits = raw.head(enc).unimodal[m]
            loss = F.cross_entropy(logits.float(), step.labels)
            step.check_finite(loss)
            params = encoder_params(raw, m) + head
            grads = dict(zip(params, step.gradients(loss, params, retain_graph=False)))
            self.project(grads, raw.fusion.fc_out.weight, features, step)
            step.step_with(grads)
            logged[f"mla_loss_{m}"] = global_batch_mean(loss, len(step.labels))
        return out, logged

    def project(self, grads, weight, features, step) -> None:
        if self.args.mla_projection == "off":
            return
        if self.projector is None:
            self.projector = torch.eye(weight.shape[1], device=weight.device, dtype=weight.dtype)
        if self.updates > 0:  # their GSPlugin skips the very first update
            feats = features.detach().to(weight.dtype)
            total = distributed.all_reduce_sum(torch.cat([feats.sum(0), feats.new_full((1,), len(feats))]))
            mean = (total[:-1] / total[-1])[None]  # the global batch's mean feature
            alpha = 0.1 ** (1 + step.index / (step.steps_in_epoch or 1))
            self.projector, grads[weight] = project_gradient(self.projector.to(weight.device, weight.dtype), mean,
                                                             grads[weight], alpha, self.args.mla_projection)
        self.updates += 1

    def state_dict(self):
        return {"projector": None if self.projector is None else self.projector.cpu(), "updates": self.updates}

    def load_state_dict(self, state):
        self.projector, self.updates = state.get("projector"), state.get("updates", 0)
