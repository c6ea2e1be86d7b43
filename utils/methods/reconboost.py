"""ReconBoost (Hua et al., ICML 2024), as the authors' train.py (huacong/ReconBoost) trains CREMA-D, and
train_MSA.py three modalities.

Training is a row of stages, each for one modality: stage s trains the modality s mod M in the dataset's
order (their fixed schedule: audio in even stages and visual in odd ones on CREMA-D; text, visual, audio on
MOSEI). A stage is
- --reconboost_stage_epochs epochs (their epochs_per_stage, 4) in which only that modality's encoder
  and the shared head learn, on the boosting loss against the ensemble of the other members,
  E = beta * sum_{k != m} z_k (no gradient), with y one-hot:
      loss = -w1 mean_c(y_c log p_m,c) + w2 mean_c(y_c softmax(E)_c log p_m,c)
  so that a sample the others already get right weighs less; plus alpha x their "gradient alignment"
  MSE(softmax(z_m), softmax(z_prev)) from the second stage on, z_prev the modality of the stage before
  (their pre_model: the other one of two). Their code (and BalanceBenchmark's)
  detaches both arguments, so that term has no gradient: --reconboost_alignment detached (the default)
  only logs it, "gradient" lets it pull z_m toward the other modality's prediction, as the paper means;
- --reconboost_rectify_epochs epochs (their correct_epoch, 4) of global rectification: CE(beta sum_k z_k)
  over the members' encoders, the head and beta.
Each phase starts with fresh optimizer state, as their fresh SGD per phase. A modality is a member
once its first stage has ended, or from the start when its encoder is pretrained (--audio_pretrain /
--visual_pretrain, their --use_pretrain; --<name>_pretrain for any modality); with no member yet E is one
constant, whose softmax is 1, and the first stage trains on (w1 - w2) CE / C.

The head is their common-space one, an MLP 512 -> 256 -> ReLU -> C scoring each modality's features
(--reconboost_head linear: BalanceBenchmark's shared linear layer); beta starts at their 1.0
(BalanceBenchmark: 0.01). The prediction is beta sum_k z_k over the modalities trained so far: in the
first stage (no pretrained visual encoder) beta z_a alone, as their ensemble scores it.
"""
import torch
import torch.nn.functional as F

from dataset.errors import DataError
from models.fusion import total

from ..flag_types import NONNEGATIVE, POSITIVE, POSITIVE_INT
from .base import Method, encoder_params
from .scores import global_batch_mean


def boosting_loss(logits: torch.Tensor, ensemble, labels: torch.Tensor, w1: float, w2: float) -> torch.Tensor:
    """Their boosting loss, averaged over the batch; `ensemble` None means no member yet (softmax of a constant)."""
    target = F.one_hot(labels, logits.shape[1]).float()
    log_p = F.log_softmax(logits.float(), 1)
    weight = 1.0 if ensemble is None else F.softmax(ensemble.detach().float(), 1)
    return (-w1 * (target * log_p).mean(1) + w2 * (target * weight * log_p).mean(1)).mean()


class ReconBoost(Method):
    name = "reconboost"
    owns_backward = True

    @classmethod
    def add_args(cls, group, modalities):
        group.add_argument("--reconboost_stage_epochs", type=POSITIVE_INT, default=4,
                           help="ReconBoost: epochs of each modality stage (the authors' epochs_per_stage 4; BB 1)")
        group.add_argument("--reconboost_rectify_epochs", type=POSITIVE_INT, default=4,
                           help="ReconBoost: epochs of global rectification after each stage (the authors' correct_epoch 4)")
        group.add_argument("--reconboost_weight1", type=NONNEGATIVE, default=5.0,
                           help="ReconBoost: w1 of the boosting loss (the authors' CREMA-D 5)")
        group.add_argument("--reconboost_weight2", type=NONNEGATIVE, default=1.0,
                           help="ReconBoost: w2, weight of the ensemble-weighted term (the authors' 1)")
        group.add_argument("--reconboost_alpha", type=NONNEGATIVE, default=0.5,
                           help="ReconBoost: weight of the alignment term (the authors' 0.5)")
        group.add_argument("--reconboost_alignment", choices=["detached", "gradient"], default="detached",
                           help="ReconBoost: detached = the authors' code (logged, no gradient), gradient = the paper's")
        group.add_argument("--reconboost_head", choices=["mlp", "linear"], default="mlp",
                           help="ReconBoost: shared head, mlp 512-256-C (the authors') or linear (BalanceBenchmark)")
        group.add_argument("--reconboost_boost_rate", type=POSITIVE, default=1.0,
                           help="ReconBoost: initial boost rate beta (the authors' 1.0; BalanceBenchmark 0.01)")

    def configure_model(self, model):
        if model.fusion_name != "concat" or model.mid_fusion is not None:
            raise DataError("--method reconboost scores each modality with one shared head and adds them, in place of "
                            f"the concat layer: use --fusion_method concat (not {model.fusion_name})")
        hidden = 256 if self.args.reconboost_head == "mlp" else 0
        model.set_head({"shared": {"hidden": hidden},
                        "combine": {"name": "boosted", "boost_rate": self.args.reconboost_boost_rate}})

    def stage_of(self, epoch: int):
        """(stage, modality of the stage, "modality" or "rectify", whether the phase starts at this epoch)."""
        per_stage = self.args.reconboost_stage_epochs + self.args.reconboost_rectify_epochs
        stage, position = divmod(epoch - 1, per_stage)
        phase = "modality" if position < self.args.reconboost_stage_epochs else "rectify"
        modality = self.modalities[stage % len(self.modalities)]
        return stage, modality, phase, position in (0, self.args.reconboost_stage_epochs)

    def members(self, stage: int, rectifying: bool):
        """The modalities in the ensemble (in the dataset's order): pretrained ones, those whose first stage (their
        position in the order) has ended, and in a rectification the stage's own."""
        return [m for first, m in enumerate(self.modalities)
                if getattr(self.args, f"{m}_pretrain", None) is not None or first < stage
                or (rectifying and first <= stage)]

    def start_epoch(self, epoch, model, optimizer):
        stage, modality, phase, starts = self.stage_of(epoch)
        if starts:
            optimizer.state.clear()  # their fresh optimizer per phase: no momentum carried over
        # the prediction sums the modalities trained so far (this stage's included): their ensemble holds only
        # the modalities added after a stage (or pretrained), so before visual's first stage they score audio alone,
        # and a third modality joins at its own first stage
        scored = self.members(stage, True)
        model.combiner.members.copy_(torch.tensor([float(m in scored) for m in self.modalities]))
        first = self.modalities[0]  # which modality a stage trains is stage mod M: the first one's flag is logged
        return {"reconboost_stage": float(stage), "reconboost_rectify": float(phase == "rectify"),
                f"reconboost_trains_{first}": float(phase == "modality" and modality == first)}

    def end_epoch(self, epoch, model):
        return {"reconboost_boost_rate": model.combiner.boost_rate.item()}

    def encode(self, raw, step, grad_for, members):
        """Encoder features of the modalities in `grad_for` (with gradient) and of the other members (without);
        zeros for a modality that is neither."""
        feats = {}
        with step.precision.autocast():
            for m in self.modalities:
                if m in grad_for:
                    feats[m] = raw.encoders[m](step.inputs[m])
                elif m in members:
                    with torch.no_grad():
                        feats[m] = raw.encoders[m](step.inputs[m])
            first = next(iter(feats.values()))
            zeros = first.new_zeros(first.shape)
            return raw.head({m: feats.get(m, zeros) for m in self.modalities})

    def train_step(self, step):
        raw = step.raw_model
        stage, modality, phase, _ = self.stage_of(step.epoch)
        members = self.members(stage, phase == "rectify")
        head = [p for p in raw.fusion.parameters() if p.requires_grad]
        beta = raw.combiner.boost_rate
        if phase == "rectify":
            out = self.encode(raw, step, members, members)
            logits = beta * total(out.unimodal[m] for m in members)
            loss = F.cross_entropy(logits.float(), step.labels)
            params = [p for m in members for p in encoder_params(raw, m)] + head + [beta]
            step.check_finite(loss)
            logged = {"reconboost_rectify_loss": global_batch_mean(loss, len(step.labels))}
        else:
            out = self.encode(raw, step, [modality], members)
            mine = out.unimodal[modality]
            others = [m for m in members if m != modality]
            ensemble = beta.detach() * total(out.unimodal[m] for m in others) if others else None
            boost = boosting_loss(mine, ensemble, step.labels, self.args.reconboost_weight1,
                                  self.args.reconboost_weight2)
            align = torch.zeros((), device=mine.device)
            previous = self.modalities[(stage - 1) % len(self.modalities)]  # their pre_model
            if stage > 0 and previous in members:
                p_mine = F.softmax(mine.float(), 1)
                p_mine = p_mine.detach() if self.args.reconboost_alignment == "detached" else p_mine
                align = F.mse_loss(p_mine, F.softmax(out.unimodal[previous].detach().float(), 1))
            loss = boost + self.args.reconboost_alpha * align
            params = encoder_params(raw, modality) + head
            step.check_finite(loss)
            logged = {"reconboost_boost_loss": global_batch_mean(boost, len(step.labels)),
                      "reconboost_align": global_batch_mean(align, len(step.labels))}
        step.step_with(dict(zip(params, step.gradients(loss, params, retain_graph=False))))
        return out, logged
