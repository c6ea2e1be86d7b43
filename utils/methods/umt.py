"""UMT and UME (Du et al., "On Uni-Modal Feature Learning in Supervised Multi-Modal Learning", ICML
2023), as BalanceBenchmark's UMT_trainer has UMT (the authors' code was not read). Both are defined per
modality, so they take any number: one uni-modal run per modality of the dataset, in its order.

UMT distils uni-modal features into the multi-modal encoders: frozen copies of the encoders of each
modality's uni-modal run (audio_only and visual_only on the audio-visual scripts; their best.pt,
--umt_teachers) see the same batch, and

    loss = CE(z) + lambda * sum_m MSE(teacher_m(x_m), f_m(x_m))      (lambda: BalanceBenchmark's scaling 10)

on the encoders' features before fusion, in the 0-based epochs --modulation_starts ..
--modulation_ends (BalanceBenchmark: 0..80). The teachers run in eval mode (BalanceBenchmark leaves
them in train mode, so their BatchNorm statistics keep moving under no_grad).

UME is the ensemble of the uni-modal models: the average of the logits of each modality's uni-modal run
(--ume_runs). Nothing trains: the run assembles them into one model whose fused logits are exactly that
average, evaluates it each epoch (--epochs 1 is enough) and saves it, so --ckpt_path evaluation, features
and diagnostics work as for any run.

A uni-modal run without --val_split (or a dataset's own validation list) chose its best.pt on the test
set, so test clips picked UMT's teacher or UME's member; the run says so in one line.
"""
import copy

import torch
import torch.nn.functional as F

from dataset.errors import DataError
from models.fusion import total

from ..checkpoint import current_keys
from ..flag_types import NONNEGATIVE
from .base import Method
from .unimodal_runs import encoder_state, runs_in_order, say_test_selection, unimodal_checkpoint, unimodal_method


def frozen_teacher(encoder: torch.nn.Module, state: dict) -> torch.nn.Module:
    teacher = copy.deepcopy(encoder)
    teacher.load_state_dict(state)
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def needs_runs(method: str, flag: str, modalities) -> DataError:
    runs = " ".join(f"{m.upper()}_RUN" for m in modalities)
    how = " / ".join(f"--method {unimodal_method(m)}" for m in modalities)
    return DataError(f"--method {method} needs {flag} {runs}: {runs_in_order(modalities)} (train them first with "
                     f"{how})")


class UMT(Method):
    name = "umt"
    single_process_only = "not yet checked against one process"
    default_window_end = 80  # BalanceBenchmark's trainer_config

    @classmethod
    def add_args(cls, group, modalities):
        group.add_argument("--umt_teachers", nargs=len(modalities), default=None,
                           metavar=tuple(f"{m.upper()}_RUN" for m in modalities),
                           help=f"UMT: run directories of {runs_in_order(modalities)} (in this order) whose best.pt "
                                "encoders are the frozen teachers")
        group.add_argument("--umt_lambda", type=NONNEGATIVE, default=10.0,
                           help="UMT: weight of the feature distillation (BalanceBenchmark's scaling 10)")
        group.add_argument("--ume_runs", nargs=len(modalities), default=None,
                           metavar=tuple(f"{m.upper()}_RUN" for m in modalities),
                           help=f"UME: run directories of {runs_in_order(modalities)} (in this order) to average")

    def __init__(self, args, *context):
        super().__init__(args, *context)
        if not args.umt_teachers:
            raise needs_runs("umt", "--umt_teachers", self.modalities)
        self.teachers, self.targets = {}, None

    def configure_model(self, model):
        ckpts = [unimodal_checkpoint(run, m, "--umt_teachers", model, same_head=False)
                 for run, m in zip(self.args.umt_teachers, self.modalities)]
        say_test_selection(self.args.umt_teachers, ckpts, "--umt_teachers")
        for ckpt, m in zip(ckpts, self.modalities):
            self.teachers[m] = frozen_teacher(model.encoders[m], encoder_state(ckpt, m))

    def train_step(self, step):
        self.targets = None
        if self.active(step.epoch):
            with torch.no_grad(), step.precision.autocast():
                self.targets = {m: self.teachers[m].to(step.inputs[m].device)(step.inputs[m]) for m in self.modalities}
        return super().train_step(step)

    def loss(self, out, labels, epoch):
        loss = F.cross_entropy(out.logits.float(), labels)
        if self.targets is None:
            self.logged = {f"umt_distill_{self.tags[m]}": 0.0 for m in self.modalities}
            return loss
        distill = [F.mse_loss(out.enc[m].float(), self.targets[m].float()) for m in self.modalities]
        self.logged = {f"umt_distill_{self.tags[m]}": d.item() for m, d in zip(self.modalities, distill)}
        return loss + self.args.umt_lambda * sum(distill)


def average_heads(model, states: dict) -> None:
    """Set the fused head so that its logits are the mean of the uni-modal models' logits; `states`: {modality:
    the state dict of the uni-modal model on it}, for each of the model's modalities. A uni-modal model scores
    W_m f_m plus its whole bias (the other modalities' features are zeros). Under MMCosine the logits are
    scale-free in W and carry no bias: the weights stay, the scale is divided by M (by the caller)."""
    names = model.names
    states = {m: current_keys(states[m]) for m in names}
    factor = 1.0 if model.mmcosine else 1 / len(names)
    with torch.no_grad():
        if model.fusion_name == "sum":
            for m, state in states.items():
                layer = model.fusion.fc[m]
                layer.weight.copy_(state[f"fusion.fc.{m}.weight"] * factor)
                if not model.mmcosine:  # model m's whole bias, over M
                    layer.bias.copy_(total(state[f"fusion.fc.{k}.bias"] for k in names) / len(names))
        else:
            d = model.fusion.feat_dim
            blocks = [states[m]["fusion.fc_out.weight"][:, i * d:(i + 1) * d] for i, m in enumerate(names)]
            weight = torch.cat(blocks, 1)
            model.fusion.fc_out.weight.copy_(weight * factor)
            if not model.mmcosine:
                model.fusion.fc_out.bias.copy_(total(states[m]["fusion.fc_out.bias"] for m in names) / len(names))


class UME(Method):
    name = "ume"
    single_process_only = "not yet checked against one process"

    def __init__(self, args, *context):
        super().__init__(args, *context)
        if not args.ume_runs:
            raise needs_runs("ume", "--ume_runs", self.modalities)

    def configure_model(self, model):
        if model.fusion_name not in ("concat", "sum"):
            raise DataError(f"--method ume averages linear heads: use --fusion_method concat or sum "
                            f"(not {model.fusion_name})")
        ckpts = [unimodal_checkpoint(run, m, "--ume_runs", model, same_head=True)
                 for run, m in zip(self.args.ume_runs, self.modalities)]
        say_test_selection(self.args.ume_runs, ckpts, "--ume_runs")
        for ckpt, m in zip(ckpts, self.modalities):
            model.encoders[m].load_state_dict(encoder_state(ckpt, m))
        if model.mmcosine:
            # sum_m s cos(f_m, W_m) is scale-free in W: the mean of the M models' logits is s / M.
            scales = {ckpt["model_config"]["scaling"] for ckpt in ckpts}
            if len(scales) > 1:
                raise DataError(f"--ume_runs: the runs use different --scaling ({sorted(scales)}); give runs "
                                "with one scale")
            model.scaling = self.args.scaling = scales.pop() / len(ckpts)
        average_heads(model, {m: ckpt["model"] for m, ckpt in zip(self.modalities, ckpts)})

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
