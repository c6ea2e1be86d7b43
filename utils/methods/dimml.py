"""DI-MML, Detached and Interactive Multimodal Learning (Fan, Xu, Wang, Liu, Guo, ACM MM 2024), as the authors'
fanyunfeng-bit/DI-MML @ 83b9b7a trains it (main_CFT.py, main_CFT_stage2.py, loss/contrast_loss.py), in two runs,
for any number of modalities.

Stage 1 (--dimml_stage 1, main_CFT.py:54-105): every encoder has its own linear head (out_m: add_unimodal_heads),
and one linear head H shared by all modalities scores each modality's live feature f_m:

    L = sum_m CE(out_m) + w * sum_m CE(H f_m) + L_DUC

There is no multimodal loss. H stands where the fusion module does (a SharedClassifier), so the model's "fused"
logits are H f_1 + ... + H f_M; their CE is NOT in the loss, only each CE(H f_m). No gradient crosses between
encoders through these terms (each depends on one modality); only H sees them all. The stage-1 model predicts
with the stage-2 combiner over the own heads and H's sum (their stage 1 reports the own heads' accuracies only).

DUC (contrast_loss.py:9-34), from the 0-based epoch --dimml_duc_start (theirs 20): once, at that epoch's start
(main_CFT.py:318-320, get_indices :154-210), each modality's class centroids of f_m over the training set
(eval mode, augmented as for training, as theirs); for each dimension d the fraction of samples whose nearest
centroid along d alone is their class; the modality's top dimensions are those above the mean fraction.
Dimensions top for m and not for n are exclusive to m against n. Per step, modality n learns m's exclusive
dimensions E from m by an instance InfoNCE with m's features DETACHED:

    L_{n<-m} = mean_i -log softmax_j( f_n,i[E] . f_m,j[E] / tau )_i,     L_DUC = sum over ordered pairs (m, n)

Two modalities: L_v on the audio-only dimensions (f_a detached) plus L_a on the visual-only ones (f_v detached),
their loss exactly (labels unused). The selected dimensions are in the method's state (exact resume).

Stage 2 (--dimml_stage 2 --dimml_stage1_run RUN, main_CFT_stage2.py:57-121, 269-294): the stage-1 run's encoders
and own heads (its last.pt, theirs effectively the last epoch, or best.pt) are loaded and frozen (encoders in eval
mode: BatchNorm statistics fixed); H is discarded; a new fusion head (--fusion_method, xavier-normal weights and
zero bias as their weight_init) is the only thing that trains, with CE on its logits. The prediction weighs the
own heads and the fused head per sample by softmax_k(max-prob_k / T) (models/heads.py CertaintyWeighted).
"""
from pathlib import Path
from typing import Dict, List

import torch
import torch.nn.functional as F
from torch import nn

from dataset.errors import DataError
from models.fusion import total

from .. import distributed
from ..checkpoint import current_keys, load_checkpoint
from ..flag_types import Bounded, NONNEGATIVE, NONNEGATIVE_INT, POSITIVE
from .base import Method
from .per_sample import training_pass_keys
from .unimodal_runs import encoder_state, selected_on

STAGE1 = "--method dimml --dimml_stage 1"


def top_dims(feat: torch.Tensor, labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """(D,) bool: the dimensions on which, alone, more samples than on the average dimension lie nearest to their
    own class's centroid (get_indices, main_CFT.py:194-204). A class absent from `labels` has no centroid."""
    feat = feat.float()
    counts = torch.bincount(labels, minlength=n_classes)
    centroids = feat.new_zeros(n_classes, feat.shape[1]).index_add_(0, labels, feat) / counts.clamp(min=1)[:, None]
    absent = counts == 0
    correct = torch.zeros(feat.shape[1], dtype=torch.long, device=feat.device)
    chunk = max(1, 2 ** 24 // (n_classes * feat.shape[1]))  # (chunk, C, D) distances at a time
    for start in range(0, len(feat), chunk):
        dist = (feat[start:start + chunk, None, :] - centroids[None]).abs()
        dist[:, absent] = float("inf")
        nearest = dist.argmin(1)  # (n, D): the first nearest class on a tie, as torch.argmin in theirs
        correct += (nearest == labels[start:start + chunk, None]).sum(0)
    # fraction_d > mean_d fraction, in integers: correct_d * D > sum_d correct_d
    return correct * feat.shape[1] > correct.sum()


def exclusive_dims(tops: Dict[str, torch.Tensor]) -> Dict[str, Dict[str, List[int]]]:
    """{m: {n: the dimensions top for m and not for n}} for every ordered pair (audio_only_indices =
    top_a - top_v, image_only_indices = top_v - top_a in theirs)."""
    return {m: {n: torch.nonzero(tops[m] & ~tops[n]).flatten().tolist() for n in tops if n != m} for m in tops}


def duc_losses(enc: Dict[str, torch.Tensor], dims: Dict[str, Dict[str, List[int]]], temperature: float):
    """{n: sum over m of L_{n<-m}}: modality n's features on m's exclusive dimensions against m's, detached, as
    an instance InfoNCE over the batch (SupConLoss.forward; its -log(exp(s_ii) / sum_j exp(s_ij)) in the stable
    log-softmax form)."""
    losses = {}
    for teacher, students in dims.items():
        for student, kept in students.items():
            index = torch.as_tensor(kept, dtype=torch.long, device=enc[student].device)
            query = enc[student].float().index_select(1, index)
            key = enc[teacher].detach().float().index_select(1, index)
            logits = query @ key.T / temperature
            loss = F.cross_entropy(logits, torch.arange(len(logits), device=logits.device))
            losses[student] = loss if student not in losses else losses[student] + loss
    return losses


class DIMML(Method):
    name = "dimml"
    single_process_only = ("its dimension selection and in-batch contrastive negatives are not yet checked "
                           "against one process")

    @classmethod
    def add_args(cls, group, modalities):
        group.add_argument("--dimml_stage", type=Bounded(int, low=1, high=2), default=1,
                           help="DI-MML: 1 = detached uni-modal training with the shared head and DUC (main_CFT.py); "
                                "2 = a fusion head on the frozen encoders of --dimml_stage1_run (main_CFT_stage2.py)")
        group.add_argument("--dimml_shared_weight", type=NONNEGATIVE, default=1.0,
                           help="DI-MML stage 1: weight w of the shared head's losses sum_m CE(H f_m) (theirs 1)")
        group.add_argument("--dimml_duc_start", type=NONNEGATIVE_INT, default=20,
                           help="DI-MML stage 1: 0-based epoch that selects the exclusive dimensions and starts the "
                                "DUC loss (theirs 20)")
        group.add_argument("--dimml_duc_temperature", type=POSITIVE, default=50.0,
                           help="DI-MML stage 1: temperature of the DUC InfoNCE (their CREMA-D and ModelNet 50, "
                                "AVE and UCF 10)")
        group.add_argument("--dimml_certainty_temperature", type=POSITIVE, default=1.0,
                           help="DI-MML: temperature T of the prediction's per-sample weights softmax(max-prob / T) "
                                "(their CREMA-D and UCF 1, AVE and ModelNet 3)")
        group.add_argument("--dimml_stage1_run", default=None, metavar="RUN",
                           help="DI-MML stage 2: the run directory of the stage-1 run whose encoders and own heads it "
                                "freezes")
        group.add_argument("--dimml_stage1_checkpoint", choices=["last", "best"], default="last",
                           help="DI-MML stage 2: which checkpoint of --dimml_stage1_run (theirs: the last epoch)")

    def __init__(self, args, *context):
        super().__init__(args, *context)
        self.stage = args.dimml_stage
        if self.stage == 2 and not args.dimml_stage1_run:
            raise DataError(f"--method dimml --dimml_stage 2 needs --dimml_stage1_run RUN: the run directory of a "
                            f"{STAGE1} run (train it first)")
        if self.stage == 1 and args.dimml_stage1_run:
            raise DataError("--dimml_stage1_run is for --dimml_stage 2: add --dimml_stage 2, or drop the flag to "
                            "train stage 1")
        self.dims = None  # stage 1: {m: {n: dimensions exclusive to m against n}}, once selected
        self.train_set = None

    def split_train(self, train, seed, val=None):
        self.train_set = train
        return train, None

    def configure_model(self, model):
        sizes = {m: w.shape[1] for m, w in model.classifier_weights().items()}
        if len(set(sizes.values())) != 1:
            raise DataError("--method dimml scores every modality's features with one shared head and compares them "
                            f"dimension by dimension, and the encoders give {sizes}: use encoders of one feature size")
        model.add_unimodal_heads()
        # H f_m, the shared head's logits per modality (the combiner gives the own heads' as out.unimodal)
        self.shared_logits = model.unimodal_logits
        combine = {"name": "certainty", "temperature": self.args.dimml_certainty_temperature}
        if self.stage == 1:
            model.set_head({"shared": {}, "combine": combine})
            return
        self.load_stage1(model)
        for layer in model.fusion.modules():  # their stage 2 initialises the new head with weight_init
            if isinstance(layer, nn.Linear):
                nn.init.xavier_normal_(layer.weight)
                nn.init.constant_(layer.bias, 0)
        model.freeze_encoders(model.names)
        for p in model.unimodal_heads.parameters():
            p.requires_grad_(False)
        model.set_head({"combine": combine})

    def load_stage1(self, model) -> None:
        """The stage-1 run's encoders and own heads into `model`; a run of another method, stage, dataset or model
        is refused in one line."""
        flag, run = "--dimml_stage1_run", Path(self.args.dimml_stage1_run)
        path = run / f"{self.args.dimml_stage1_checkpoint}.pt"
        if not path.is_file():
            raise DataError(f"{flag}: no {path.name} in {run}. Give the run directory of a {STAGE1} run")
        ckpt = load_checkpoint(path)
        saved, config = ckpt.get("args") or {}, ckpt["model_config"]
        if saved.get("method") != "dimml" or saved.get("dimml_stage") != 1 or not config.get("unimodal_heads"):
            what = f"--method {saved.get('method')}" + (f" --dimml_stage {saved.get('dimml_stage')}"
                                                        if saved.get("method") == "dimml" else "")
            raise DataError(f"{flag}: {run} is not a DI-MML stage-1 run (it ran {what}). Give a {STAGE1} run")
        trained = list(config.get("dataset_modalities", []))
        if trained != list(model.names) or config["n_classes"] != model.n_classes:
            raise DataError(f"{flag}: {run} is a run on another dataset ({', '.join(trained)}, {config['n_classes']} "
                            f"classes; this one: {', '.join(model.names)}, {model.n_classes}). Give a stage-1 run of "
                            "this dataset")
        if (config["fusion"], bool(config["mmcosine"])) != (model.fusion_name, model.mmcosine):
            raise DataError(f"{flag}: {run} was trained with --fusion_method {config['fusion']} --mmcosine "
                            f"{config['mmcosine']}, this run has --fusion_method {model.fusion_name} --mmcosine "
                            f"{model.mmcosine}. Give these flags as stage 1 had them, or a stage-1 run with yours")
        state = current_keys(ckpt["model"])
        try:
            for m in model.names:
                model.encoders[m].load_state_dict(encoder_state(ckpt, m))
                prefix = f"unimodal_heads.{m}."
                model.unimodal_heads[m].load_state_dict({k[len(prefix):]: v for k, v in state.items()
                                                         if k.startswith(prefix)})
        except RuntimeError as err:
            detail = " ".join(str(err).split())[:200]
            raise DataError(f"{flag}: {path} does not fit the encoders these flags build ({detail}). Give the encoder "
                            "flags stage 1 had") from None
        self.say_stage1_notes(run, path, ckpt, saved)

    def say_stage1_notes(self, run, path, ckpt, saved) -> None:
        notes = []
        if ckpt["epoch"] < saved.get("epochs", ckpt["epoch"]):
            notes.append(f"note: --dimml_stage1_run: {path} holds epoch {ckpt['epoch']} of the run's "
                         f"--epochs {saved['epochs']} (the authors' stage 2 takes the last epoch)")
        if self.args.dimml_stage1_checkpoint == "best" and selected_on(run, ckpt) == "test":
            notes.append(f"note: --dimml_stage1_run: {path} was chosen on the test set (stage 1 had no --val_split): "
                         "stage 2 builds on weights the test clips picked")
        if distributed.is_main_process():
            for note in notes:
                print(note, flush=True)

    def select_dims(self, epoch: int, n_classes: int) -> Dict[str, Dict[str, List[int]]]:
        """The exclusive dimensions from an eval-mode pass over the training set, augmented as for training."""
        keys = training_pass_keys(self.args.random_seed, epoch, range(len(self.train_set)))
        feats, labels = {m: [] for m in self.modalities}, []
        for out, batch_labels in self.forward_batches(self.train_set, keys):
            for m in self.modalities:
                feats[m].append(out.enc[m].float())
            labels.append(batch_labels)
        labels = torch.cat(labels)
        return exclusive_dims({m: top_dims(torch.cat(feats[m]), labels, n_classes) for m in self.modalities})

    def start_epoch(self, epoch, model, optimizer):
        if self.stage != 1:
            return {}
        if self.dims is None and epoch - 1 >= self.args.dimml_duc_start:
            self.dims = self.select_dims(epoch, model.n_classes)
        if self.dims is None:
            return {}
        return {f"dimml_dims_{self.tags[m]}_not_{self.tags[n]}": float(len(kept))
                for m, students in self.dims.items() for n, kept in students.items()}

    def loss(self, out, labels, epoch):
        if self.stage == 2:  # only the new fusion head trains; the prediction (out.logits) is the ensemble
            fused = F.cross_entropy(out.fused.float(), labels)
            self.logged = {"dimml_fused": fused.item()}
            return fused
        own = {m: F.cross_entropy(out.heads[m].float(), labels) for m in self.modalities}
        shared_logits = self.shared_logits(out.feat)
        shared = {m: F.cross_entropy(shared_logits[m].float(), labels) for m in self.modalities}  # H f_m
        duc = {}
        if self.dims is not None and epoch - 1 >= self.args.dimml_duc_start:
            duc = duc_losses(out.enc, self.dims, self.args.dimml_duc_temperature)
        loss = total([*own.values(), *(self.args.dimml_shared_weight * x for x in shared.values()), *duc.values()])
        self.logged = {**{f"dimml_own_{self.tags[m]}": x.item() for m, x in own.items()},
                       **{f"dimml_shared_{self.tags[m]}": x.item() for m, x in shared.items()},
                       **{f"dimml_duc_{self.tags[m]}": duc[m].item() if m in duc else 0.0 for m in self.modalities},
                       "dimml_duc": sum(x.item() for x in duc.values())}
        return loss

    def state_dict(self):
        return {"dims": self.dims}

    def load_state_dict(self, state):
        self.dims = state.get("dims")
