"""G²D, gradient-guided distillation (Rakib & Bagavathi, ICCV 2025), as the authors' rAIson-Lab/G2D
(student.py, utils/utils.py, config.py @ 95969d8) trains its multi-modal student, for any number of modalities:
one frozen uni-modal teacher per modality (the best.pt of each modality's uni-modal run, --g2d_teachers, in the
dataset's order: audio_only and visual_only on the audio-visual scripts), whole models, encoder and head, in
eval mode (their BatchNorm uses its running statistics) and without gradients.

Loss (student.py:100-140, 179-192; weights and temperature 1 in config.py:106-144):

    L = CE(z) + sum_m [ tau^2 KL(softmax(zT_m / tau) || softmax(z / tau)) + MSE(f_m, fT_m) ]

with z the student's FUSED logits (every teacher distils into them), zT_m teacher m's logits, f_m / fT_m the
pooled encoder features (out.enc) of student and teacher. The authors' student uses late fusion, the mean of
the modalities' logits (fusion_modules.py:27-42); our sum fusion adds them, so by default the losses see z / M
(--g2d_average_logits; with --fusion_method sum that is their model and objective exactly, parameter for
parameter). Evaluation scores the model's own logits, z: the same predictions, M times sharper.

Sequential modality prioritisation (SMP, utils.py:243-284), after the backward pass: s_m = sum over the
batch of softmax(zT_m)[true class], the TEACHERS' confidence; the encoder whose teacher is the most confident
has its 4-D gradients (convolution weights) set to zero for this step (coefficient 0), the others keep theirs
(1), in the 0-based epochs --modulation_starts .. --modulation_ends (their 0..150). The authors compare two
modalities and raise ValueError on a tie; here a tie for the top modulates none: no modality leads, so none
is held back (the step trains as joint training with distillation).
"""
import copy

import torch
import torch.nn.functional as F

from models import MultiModalClassifier

from .. import distributed
from ..build import match_checkpoint_architecture
from ..checkpoint import load_model_state
from ..flag_types import NONNEGATIVE, POSITIVE
from .base import Method
from .ogm import conv_weights
from .scores import true_class_scores
from .umt import needs_runs
from .unimodal_runs import runs_in_order, say_test_selection, unimodal_checkpoint


def frozen_unimodal_model(model, ckpt: dict, path) -> MultiModalClassifier:
    """The whole model of a uni-modal run's checkpoint (its encoder and head, as it was evaluated), built on
    copies of `model`'s encoders, frozen in eval mode."""
    config = ckpt["model_config"]
    teacher = MultiModalClassifier(model.n_classes, copy.deepcopy(dict(model.encoders)), fusion=config["fusion"],
                                   mmcosine=config["mmcosine"], scaling=config.get("scaling", 10.0))
    match_checkpoint_architecture(teacher, config)
    load_model_state(teacher, ckpt["model"], path)
    return teacher.eval().requires_grad_(False)


def prioritised(scores: dict) -> dict:
    """SMP's coefficient per modality: 0 for the one whose teacher is the most confident, 1 for the others;
    a tie for the top gives every modality 1."""
    top = max(scores.values())
    leaders = [m for m, s in scores.items() if s == top]
    return {m: 0.0 if leaders == [m] else 1.0 for m in scores}


class G2D(Method):
    name = "g2d"
    single_process_only = "not yet checked against one process"
    default_window_end = 150  # config.py: modulation_ends 150

    @classmethod
    def add_args(cls, group, modalities):
        from ..args import str2bool  # utils.args imports the methods: read at parse time
        group.add_argument("--g2d_teachers", nargs=len(modalities), default=None,
                           metavar=tuple(f"{m.upper()}_RUN" for m in modalities),
                           help=f"G2D: run directories of {runs_in_order(modalities)} (in this order) whose best.pt "
                                "models are the frozen teachers")
        group.add_argument("--g2d_temperature", type=POSITIVE, default=1.0,
                           help="G2D: temperature tau of the logit distillation (the authors' 1)")
        group.add_argument("--g2d_ce_weight", type=NONNEGATIVE, default=1.0,
                           help="G2D: weight of the cross-entropy of the fused logits (the authors' 1)")
        group.add_argument("--g2d_logit_weight", type=NONNEGATIVE, default=1.0,
                           help="G2D: weight of each teacher's logit distillation, tau^2 KL (the authors' 1)")
        group.add_argument("--g2d_feature_weight", type=NONNEGATIVE, default=1.0,
                           help="G2D: weight of each encoder's feature MSE to its teacher's (the authors' 1)")
        group.add_argument("--g2d_average_logits", type=str2bool, default=True, metavar="BOOL",
                           help="G2D: the losses see the fused logits divided by the number of modalities (the "
                                "authors' late fusion, their mean of the logits; False: our fused logits as they are)")

    def __init__(self, args, *context):
        super().__init__(args, *context)
        if not args.g2d_teachers:
            raise needs_runs("g2d", "--g2d_teachers", self.modalities)
        self.teachers, self.teacher_out = {}, None

    def configure_model(self, model):
        ckpts = [unimodal_checkpoint(run, m, "--g2d_teachers", model, same_head=False)
                 for run, m in zip(self.args.g2d_teachers, self.modalities)]
        say_test_selection(self.args.g2d_teachers, ckpts, "--g2d_teachers")
        for run, ckpt, m in zip(self.args.g2d_teachers, ckpts, self.modalities):
            self.teachers[m] = frozen_unimodal_model(model, ckpt, run)

    def train_step(self, step):
        with torch.no_grad(), step.precision.autocast():
            self.teacher_out = {m: self.teachers[m].to(step.labels.device)(step.inputs) for m in self.modalities}
        try:
            return super().train_step(step)
        finally:
            self.teacher_out = None  # a step's tensors, never part of a checkpoint's epoch state

    def loss(self, out, labels, epoch):
        args, tau = self.args, self.args.g2d_temperature
        fused = out.logits.float()
        if args.g2d_average_logits:
            fused = fused / len(self.modalities)
        student = F.log_softmax(fused / tau, dim=1)
        kl = [F.kl_div(student, F.softmax(self.teacher_out[m].logits.float() / tau, dim=1), reduction="batchmean")
              * tau ** 2 for m in self.modalities]
        mse = [F.mse_loss(out.enc[m].float(), self.teacher_out[m].enc[m].float()) for m in self.modalities]
        values = torch.stack([*kl, *mse]).tolist()  # one device sync for the log
        n = len(self.modalities)
        self.logged = {**{f"g2d_kl_{self.tags[m]}": v for m, v in zip(self.modalities, values[:n])},
                       **{f"g2d_mse_{self.tags[m]}": v for m, v in zip(self.modalities, values[n:])}}
        return (args.g2d_ce_weight * F.cross_entropy(fused, labels)
                + args.g2d_logit_weight * sum(kl) + args.g2d_feature_weight * sum(mse))

    def before_step(self, model, out, labels, epoch):
        # The teachers' confidence over the global batch, so every process zeroes the same encoder.
        scores = dict(zip(self.modalities,
                          true_class_scores(labels, *(self.teacher_out[m].logits for m in self.modalities))))
        coeffs = prioritised(scores) if self.active(epoch) else {m: 1.0 for m in self.modalities}
        for m, coeff in coeffs.items():
            if coeff == 0.0:
                for p in conv_weights(model, m):
                    p.grad.zero_()
        batch = labels.shape[0] * distributed.world_size()
        return {**self.logged, **{f"g2d_coeff_{self.tags[m]}": coeffs[m] for m in self.modalities},
                **{f"g2d_teacher_conf_{self.tags[m]}": scores[m] / batch for m in self.modalities}}
