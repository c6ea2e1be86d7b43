"""UMT and UME (Du et al., "On Uni-Modal Feature Learning in Supervised Multi-Modal Learning", ICML
2023), as BalanceBenchmark's UMT_trainer has UMT (the authors' code was not read).

UMT distils uni-modal features into the multi-modal encoders: frozen copies of the encoders of an
audio_only and a visual_only run (their best.pt, --umt_teachers) see the same batch, and

    loss = CE(z) + lambda * sum_m MSE(teacher_m(x_m), f_m(x_m))      (lambda: BalanceBenchmark's scaling 10)

on the encoders' features before fusion, in the 0-based epochs --modulation_starts ..
--modulation_ends (BalanceBenchmark: 0..80). The teachers run in eval mode (BalanceBenchmark leaves
them in train mode, so their BatchNorm statistics keep moving under no_grad).

UME is the ensemble of two uni-modal models: the average of the logits of an audio_only and a
visual_only run (--ume_runs). Nothing trains: the run assembles the two into one model whose fused
logits are exactly that average, evaluates it each epoch (--epochs 1 is enough) and saves it, so
--ckpt_path evaluation, features and diagnostics work as for any run.

A uni-modal run without --val_split (or a dataset's own validation list) chose its best.pt on the test
set, so test clips picked UMT's teacher or UME's member; the run says so in one line.
"""
import copy

import torch
import torch.nn.functional as F

from dataset.errors import DataError

from ..flag_types import NONNEGATIVE
from .base import Method
from .unimodal_runs import encoder_state, say_test_selection, unimodal_checkpoint

MODALITIES = ("audio", "visual")


def frozen_teacher(encoder: torch.nn.Module, state: dict) -> torch.nn.Module:
    teacher = copy.deepcopy(encoder)
    teacher.load_state_dict(state)
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


class UMT(Method):
    name = "umt"
    single_process_only = "not yet checked against one process"
    default_window_end = 80  # BalanceBenchmark's trainer_config

    @classmethod
    def add_args(cls, group):
        group.add_argument("--umt_teachers", nargs=2, default=None, metavar=("AUDIO_RUN", "VISUAL_RUN"),
                           help="UMT: run directories of an audio_only and a visual_only run whose best.pt encoders "
                                "are the frozen teachers")
        group.add_argument("--umt_lambda", type=NONNEGATIVE, default=10.0,
                           help="UMT: weight of the feature distillation (BalanceBenchmark's scaling 10)")
        group.add_argument("--ume_runs", nargs=2, default=None, metavar=("AUDIO_RUN", "VISUAL_RUN"),
                           help="UME: run directories of an audio_only and a visual_only run to average")

    def __init__(self, args):
        super().__init__(args)
        if not args.umt_teachers:
            raise DataError("--method umt needs --umt_teachers AUDIO_RUN VISUAL_RUN: an audio_only and a visual_only "
                            "run (train them first with --method audio_only / visual_only)")
        self.teachers, self.targets = {}, None

    def configure_model(self, model):
        ckpts = [unimodal_checkpoint(run, m, "--umt_teachers", model, same_head=False)
                 for run, m in zip(self.args.umt_teachers, MODALITIES)]
        say_test_selection(self.args.umt_teachers, ckpts, "--umt_teachers")
        for ckpt, m in zip(ckpts, MODALITIES):
            self.teachers[m] = frozen_teacher(getattr(model, f"{m}_encoder"), encoder_state(ckpt, m))

    def train_step(self, step):
        self.targets = None
        if self.active(step.epoch):
            with torch.no_grad(), step.precision.autocast():
                self.targets = [self.teachers[m].to(x.device)(x) for m, x in zip(MODALITIES, (step.audio, step.visual))]
        return super().train_step(step)

    def loss(self, out, labels, epoch):
        loss = F.cross_entropy(out.logits.float(), labels)
        if self.targets is None:
            self.logged = {"umt_distill_a": 0.0, "umt_distill_v": 0.0}
            return loss
        distill = [F.mse_loss(f.float(), t.float()) for f, t in zip((out.enc_a, out.enc_v), self.targets)]
        self.logged = {"umt_distill_a": distill[0].item(), "umt_distill_v": distill[1].item()}
        return loss + self.args.umt_lambda * sum(distill)


def average_heads(model, audio_model_state: dict, visual_model_state: dict) -> None:
    """Set the fused head so that its logits are the mean of the two uni-modal models' logits. A uni-modal
    model scores W_m f_m plus its whole bias (the other modality's features are zeros). Under MMCosine the
    logits are scale-free in W and carry no bias: the weights stay, the scale is halved (by the caller)."""
    factor = 1.0 if model.mmcosine else 0.5
    states = {"a": audio_model_state, "v": visual_model_state}
    with torch.no_grad():
        if model.fusion_name == "sum":
            for m, state in states.items():
                layer = getattr(model.fusion, f"fc_{m}")
                layer.weight.copy_(state[f"fusion.fc_{m}.weight"] * factor)
                if not model.mmcosine:
                    layer.bias.copy_((state["fusion.fc_a.bias"] + state["fusion.fc_v.bias"]) / 2)
        else:
            d = model.fusion.feat_dim
            weight = torch.cat([states["a"]["fusion.fc_out.weight"][:, :d], states["v"]["fusion.fc_out.weight"][:, d:]], 1)
            model.fusion.fc_out.weight.copy_(weight * factor)
            if not model.mmcosine:
                model.fusion.fc_out.bias.copy_((states["a"]["fusion.fc_out.bias"] + states["v"]["fusion.fc_out.bias"]) / 2)


class UME(Method):
    name = "ume"
    single_process_only = "not yet checked against one process"

    def __init__(self, args):
        super().__init__(args)
        if not args.ume_runs:
            raise DataError("--method ume needs --ume_runs AUDIO_RUN VISUAL_RUN: an audio_only and a visual_only run "
                            "(train them first with --method audio_only / visual_only)")

    def configure_model(self, model):
        if model.fusion_name not in ("concat", "sum"):
            raise DataError(f"--method ume averages two linear heads: use --fusion_method concat or sum "
                            f"(not {model.fusion_name})")
        ckpts = [unimodal_checkpoint(run, m, "--ume_runs", model, same_head=True)
                 for run, m in zip(self.args.ume_runs, MODALITIES)]
        say_test_selection(self.args.ume_runs, ckpts, "--ume_runs")
        for ckpt, m in zip(ckpts, MODALITIES):
            getattr(model, f"{m}_encoder").load_state_dict(encoder_state(ckpt, m))
        if model.mmcosine:
            # s cos(f_a, W_a) + s cos(f_v, W_v) is scale-free in W: the mean of the two models' logits is s / 2.
            scales = {ckpt["model_config"]["scaling"] for ckpt in ckpts}
            if len(scales) > 1:
                raise DataError(f"--ume_runs: the two runs use different --scaling ({sorted(scales)}); give runs "
                                "with one scale")
            model.scaling = self.args.scaling = scales.pop() / 2
        average_heads(model, ckpts[0]["model"], ckpts[1]["model"])

    def train_step(self, step):
        """Nothing trains: the ensemble's statistics on the training batch, in eval mode."""
        step.raw_model.eval()
        try:
            with torch.no_grad():
                out = step.forward(raw=True)
                step.check_finite(F.cross_entropy(out.logits.float(), step.labels))
        finally:
            step.raw_model.train()
        step.optimizer.zero_grad(set_to_none=True)
        step.optimizer.step()  # no parameter has a gradient: nothing moves (keeps the lr schedule's bookkeeping)
        return out, {}
