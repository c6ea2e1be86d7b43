"""AUG, sustained boosting with adaptive classifier assignment (Jiang, Huang, Yang, "Rethinking Multimodal Learning
from the Perspective of Mitigating Classification Ability Disproportion", NeurIPS 2025), as the authors'
njustkmg/NeurIPS25-AUG @ 841d079 trains CREMA-D (train_CREMAD.py, model/AudioVideo.py).

The model (models/heads.py BoostedLearners in place of the fusion layer, the head spec's "learners"): per modality
an embedding Linear(512, 256) + ReLU, and the boosting learners of the same shape the method adds over time, every
one scored by ONE classifier fc_out (256 -> C) shared by all of them. A modality's logits z_m are the sum of its
learners' logits.

The step: one forward of the encoders, then for each modality in the dataset's order (their audio, then visual) its
own loss, backward and optimizer step, through the head as the steps before it left it:

    L_m = CE(z_m)                                                                  before m has an added learner
    L_m = CE(z_m) + CE(o_m) + CE(a_m) - w CE_soft(a_m, y * softmax(o_m).detach())  after

o_m the logits of all of m's learners but the newest, a_m the newest's, y one-hot: the last two terms are
-(1 - w p_o(y)) log p_a(y), so the newest learner learns most where the others fail. w = 0.5 is their code
(train_CREMAD.py:57, :70); the comment beside it says 0.2 (--aug_residual_weight).

Adaptive assignment: a modality's score S_m sums p_m(y) (softmax of z_m at its step) over the epoch's training
samples. After the first epoch and every --aug_every epochs (their epochs / 10), ratio = S_1 / S_2: above
lambda + 0.01 the second modality gets a learner, below lambda - 0.01 the first (lambda = --aug_lambda, 1); with
more modalities the weakest gets one where S_max / S_min > lambda + 0.01. The learner is added at the start of the
next epoch, so each epoch is evaluated with the learners it trained, as their add_layer runs after val(); it joins
the optimizer with the settings of the classifier's group (new_param_groups). The head spec lists the learners in
the order they were added, so a checkpoint evaluates, and --resume rebuilds the grown model and its optimizer.
Their optimizer is built once, before any learner exists (:201), so their learners stay the random projections they
start as and only the encoders, embeddings and fc_out learn through them: --aug_learners_train False.

Test prediction: alpha z_1 + (1 - alpha) z_2, alpha = --aug_merge_alpha (their --merge_alpha, 0.4; the fixed entropy
combiner); with other than two modalities the sum of the z_m.

With --mmcosine True each sum of learner outputs is scored as cosine logits by fc_out's rows (the model's MMCosine
path), z_m included, instead of a sum of each learner's logits.
"""
from typing import Dict, Optional

import torch
import torch.nn.functional as F

from dataset.errors import DataError
from models.fusion import total
from models.mmcosine import cosine_logits

from ..flag_types import NONNEGATIVE, POSITIVE, POSITIVE_INT, PROBABILITY
from .base import Method, encoder_params
from .scores import global_batch_mean, true_class_scores

HIDDEN = 256       # their embedding and learner width
TOLERANCE = 0.01   # their band around lambda in which no modality gets a learner
MERGE_ALPHA = 0.4  # their --merge_alpha


def learner_logits(model, summed: torch.Tensor, n_learners: int) -> torch.Tensor:
    """The logits of a sum of n learners' outputs as the model scores a modality: fc_out with its bias once per
    learner (their sum of each learner's fc_out), or MMCosine's cosine logits."""
    fc = model.fusion.fc_out
    if model.mmcosine:
        return cosine_logits(summed, fc.weight, model.scaling)
    return F.linear(summed, fc.weight, n_learners * fc.bias)


def modality_logits(model, features: torch.Tensor, name: str):
    """(z, o, a) of modality `name` on its encoder features: all its learners, all but the newest, the newest;
    o and a are None while it has no added learner (their classfier)."""
    parts = model.fusion.parts(features, name)
    everything = learner_logits(model, total(parts), len(parts))
    if len(parts) == 1:
        return everything, None, None
    return everything, learner_logits(model, total(parts[:-1]), len(parts) - 1), learner_logits(model, parts[-1], 1)


def boosting_loss(everything, others, newest, labels: torch.Tensor, weight: float) -> torch.Tensor:
    """CE(z) + CE(o) + CE(a) - weight * CE_soft(a, y * softmax(o).detach()), each averaged over the batch; CE(z)
    alone before the first added learner. CE_soft(a, y * s) = -s_y log p_a(y) for a one-hot y."""
    loss = F.cross_entropy(everything.float(), labels)
    if newest is None:
        return loss
    kept = F.softmax(others.detach().float(), 1).gather(1, labels[:, None]).squeeze(1)
    log_new = F.log_softmax(newest.float(), 1).gather(1, labels[:, None]).squeeze(1)
    return (loss + F.cross_entropy(others.float(), labels) + F.cross_entropy(newest.float(), labels)
            + weight * (kept * log_new).mean())


def modality_to_grow(scores: Dict[str, float], lam: float) -> Optional[str]:
    """Which modality gets the next learner from the epoch's scores S_m = sum of p_m(y), or None (balanced)."""
    tiny = 1e-12  # a score that underflowed to 0 is the weakest, not a division by zero
    names = list(scores)
    if len(names) == 2:  # their test, with the first modality's score on top
        first, second = names
        ratio = scores[first] / max(scores[second], tiny)
        return second if ratio > lam + TOLERANCE else first if ratio < lam - TOLERANCE else None
    strongest, weakest = max(names, key=scores.get), min(names, key=scores.get)
    return weakest if scores[strongest] / max(scores[weakest], tiny) > lam + TOLERANCE else None


class AUG(Method):
    name = "aug"
    owns_backward = True
    single_process_only = "the learners it adds during the run cannot join DistributedDataParallel"

    @classmethod
    def add_args(cls, group, modalities):
        from ..args import str2bool  # utils.args imports the methods: read at parse time
        group.add_argument("--aug_every", type=POSITIVE_INT, default=None,
                           help="AUG: compare the modalities after the first epoch and every N epochs (default: their "
                                "epochs / 10 for runs of more than 10 epochs, else every epoch)")
        group.add_argument("--aug_lambda", type=POSITIVE, default=1.0,
                           help=f"AUG: the score ratio S_{modalities[0]} / S_{modalities[-1]} taken as balanced (their "
                                f"--lam): above lambda + {TOLERANCE} the second modality gets a learner, below "
                                f"lambda - {TOLERANCE} the first; with more modalities the weakest, where "
                                f"S_max / S_min > lambda + {TOLERANCE}")
        group.add_argument("--aug_residual_weight", type=NONNEGATIVE, default=0.5,
                           help="AUG: w in the newest learner's loss -(1 - w p_others(y)) log p_new(y) (their code: "
                                "0.5; the comment beside it: 0.2)")
        group.add_argument("--aug_merge_alpha", type=PROBABILITY, default=None,
                           help=f"AUG: the test prediction alpha z_{modalities[0]} + (1 - alpha) z_{modalities[-1]} "
                                f"(their --merge_alpha; default {MERGE_ALPHA}; two modalities, with more the sum)")
        group.add_argument("--aug_learners_train", type=str2bool, default=True, metavar="BOOL",
                           help="AUG: added learners join the optimizer (the paper); False: they stay the random "
                                "projections they start as (their code builds the optimizer before adding any)")

    def __init__(self, args, *context):
        super().__init__(args, *context)
        alpha = getattr(args, "aug_merge_alpha", None)
        if alpha is not None and len(self.modalities) != 2:
            raise DataError(f"--aug_merge_alpha weighs two modalities and this dataset has {len(self.modalities)}: "
                            "drop it (the prediction is then the sum of the modalities' logits)")
        self.merge_alpha = MERGE_ALPHA if alpha is None else alpha
        self.every = args.aug_every or (args.epochs // 10 if args.epochs > 10 else 1)  # their int(epochs / 10)
        self.pending: Optional[str] = None  # the modality whose learner the next epoch adds
        self.scores = {m: 0.0 for m in self.modalities}  # this epoch's sum of p_m(y) per modality
        self.counted = 0                    # and the samples it sums over
        self.new_groups = []                # the optimizer groups of learners added since the runner asked

    def configure_model(self, model):
        if model.fusion_name != "concat" or model.mid_fusion is not None:
            raise DataError(f"--method aug puts its learners and shared classifier in place of the concat layer (the "
                            f"authors' model): use --fusion_method concat (not {model.fusion_name})")
        dims = {m: int(w.shape[1]) for m, w in model.classifier_weights().items()}  # the encoders' feature sizes
        head = {"learners": {"dims": dims, "hidden": HIDDEN, "added": []}}
        if len(self.modalities) == 2:  # "audio_weight" is the first modality's weight (models/heads.py)
            head["combine"] = {"name": "entropy", "mode": "fixed", "audio_weight": self.merge_alpha}
        model.set_head(head)

    def learners_in_order(self, model):
        """The added learners, oldest first (the order the optimizer got them)."""
        head, seen = model.fusion, {m: 0 for m in self.modalities}
        for name in head.added:
            yield head.learners[name][seen[name]]
            seen[name] += 1

    def param_groups(self, model):
        """One group for the model, then one per added learner in the order added (a resumed run's grown model gets
        the groups its optimizer state was saved with); frozen learners in none."""
        learners = list(self.learners_in_order(model))
        for layer in learners:  # a model rebuilt from a checkpoint's head spec starts with trainable learners
            layer.requires_grad_(self.args.aug_learners_train)
        grown = {id(p) for layer in learners for p in layer.parameters()}
        groups = [{"params": [p for p in model.parameters() if p.requires_grad and id(p) not in grown]}]
        if self.args.aug_learners_train:
            groups += [{"params": list(layer.parameters())} for layer in learners]
        return groups

    def new_param_groups(self):
        groups, self.new_groups = self.new_groups, []
        return groups

    def start_epoch(self, epoch, model, optimizer):
        self.scores, self.counted = {m: 0.0 for m in self.modalities}, 0
        if self.pending is not None:
            self.grow(model, optimizer, self.pending)
            self.pending = None
        return {}

    def grow(self, model, optimizer, name: str) -> None:
        """A learner for modality `name`, in the model, its head spec, and (trained) the optimizer's next group."""
        layer = model.fusion.add_learner(name)
        spec = model.head_spec
        model.head_spec = {**spec, "learners": {**spec["learners"], "added": list(model.fusion.added)}}
        if not self.args.aug_learners_train:
            layer.requires_grad_(False)
            return
        shared = model.fusion.fc_out.weight
        settings = next(g for g in optimizer.param_groups if any(p is shared for p in g["params"]))
        self.new_groups.append({**{k: v for k, v in settings.items() if k != "params"},
                                "params": list(layer.parameters())})

    def train_step(self, step):
        if not self.active(step.epoch):
            return super().train_step(step)
        raw, labels = step.raw_model, step.labels
        out = step.forward(raw=True)
        head = raw.fusion
        logged = {}
        for m in self.modalities:
            with step.precision.autocast():  # through fc_out as the previous modality's step left it
                everything, others, newest = modality_logits(raw, out.enc[m], m)
            loss = boosting_loss(everything, others, newest, labels, self.args.aug_residual_weight)
            step.check_finite(loss)
            params = [p for p in [*encoder_params(raw, m), *head.embedding[m].parameters(),
                                  *head.learners[m].parameters(), *head.fc_out.parameters()] if p.requires_grad]
            grads = step.gradients(loss, params, retain_graph=False)
            step.step_with(dict(zip(params, grads)))
            self.scores[m] += true_class_scores(labels, everything)[0]
            logged[f"aug_loss_{self.tags[m]}"] = global_batch_mean(loss, len(labels))
        self.counted += len(labels)
        return out, logged

    def end_epoch(self, epoch, model):
        if not self.active(epoch) or not self.counted:
            return {}
        record = {f"aug_score_{self.tags[m]}": self.scores[m] / self.counted for m in self.modalities}
        record.update({f"aug_learners_{self.tags[m]}": float(len(model.fusion.learners[m])) for m in self.modalities})
        if len(self.modalities) == 2:
            first, second = self.modalities
            record["aug_ratio"] = self.scores[first] / max(self.scores[second], 1e-12)
        if epoch == 1 or epoch % self.every == 0:  # their (epoch + 1) % check == 0 or epoch == 0, 0-based
            self.pending = modality_to_grow(self.scores, self.args.aug_lambda)
        return record

    def state_dict(self):
        return {"pending": self.pending}

    def load_state_dict(self, state):
        self.pending = state.get("pending")
