"""Per-epoch statistics of the fused and uni-modal predictions.

Sums and confusion matrices are accumulated per batch and reduced once at the end, so the
averages are exact over the samples seen, also summed across processes. On request the
meter also keeps the features of every sample (for the angle statistics and --save_features).
"""
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F

from . import distributed

def sample_keys(tags: Dict[str, str]) -> Tuple[str, ...]:
    """What is averaged over samples, in the order of the sum vector: the fused and per-modality losses and
    accuracies, acc_linear (the fusion layer's plain linear output: acc without MMCosine; under MMCosine the
    fused accuracy the released main_CD.py reported, see ModalOutput.logits_linear), and the per-modality
    mean ground-truth logit. Keys of a modality end in its tag (acc_a)."""
    t = list(tags.values())
    return ("loss", *(f"loss_{x}" for x in t), "acc", *(f"acc_{x}" for x in t), "acc_linear",
            *(f"gt_logit_{x}" for x in t))


def batch_sums(out, labels: torch.Tensor) -> torch.Tensor:
    """Sums over the batch of every sample_keys quantity, as one float64 vector (on the model's device)."""
    with torch.no_grad():
        logits = out.logits.float()
        unimodal = [x.float() for x in out.unimodal.values()]
        linear = logits if out.logits_linear is None else out.logits_linear
        per_key = [F.cross_entropy(logits, labels, reduction="sum"),
                   *(F.cross_entropy(x, labels, reduction="sum") for x in unimodal),
                   (logits.argmax(1) == labels).sum(),
                   *((x.argmax(1) == labels).sum() for x in unimodal),
                   (linear.argmax(1) == labels).sum(),
                   *(x.gather(1, labels[:, None]).sum() for x in unimodal)]
        return torch.stack([x.double() for x in per_key])


def macro_f1(confusion: torch.Tensor) -> float:
    """Mean over classes of F1 = 2TP / (2TP + FP + FN), in percent; rows are true classes.
    Classes absent from both labels and predictions are left out of the mean."""
    confusion = confusion.double()
    tp = confusion.diag()
    denominator = confusion.sum(0) + confusion.sum(1)  # = 2TP + FP + FN
    present = denominator > 0
    return (100.0 * (2 * tp[present] / denominator[present]).mean()).item() if present.any() else 0.0


def _degrees(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.rad2deg(torch.arccos(F.cosine_similarity(a, b, dim=1).clamp(-1.0, 1.0)))


def angles_to_class_centres(feat: torch.Tensor, labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Per sample, degrees between its feature and its class centre (the mean feature of its class in this set)."""
    feat = feat.double()
    sums = torch.zeros(n_classes, feat.shape[1], dtype=feat.dtype).index_add_(0, labels, feat)
    counts = torch.bincount(labels, minlength=n_classes).clamp(min=1).to(feat.dtype)
    return _degrees(feat, (sums / counts[:, None])[labels])


def angle_stats(feat: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor) -> Dict[str, float]:
    """Angles (degrees) between each sample's feature and (a) its class centre and (b) its class's
    classifier weight vector: mean and std of each."""
    to_centre = angles_to_class_centres(feat, labels, weight.shape[0])
    to_weight = _degrees(feat.double(), weight.detach().double().cpu()[labels])
    return {"angle_centre": to_centre.mean().item(), "angle_centre_std": to_centre.std(unbiased=False).item(),
            "angle_weight": to_weight.mean().item(), "angle_weight_std": to_weight.std(unbiased=False).item()}


class EpochMeter:
    """`tags` {modality name: tag}, in the model's order: the keys of each modality's statistics end in its tag."""

    def __init__(self, tags: Dict[str, str], keep_features: bool = False):
        self.tags = dict(tags)
        self.keys = sample_keys(self.tags)
        self.keep_features = keep_features
        self.sums = self.confusion = None
        self.count = 0
        self.kept = []
        self.extras, self.steps = {}, 0
        self.last_features = None  # set by result(): the (gathered) features it computed angles from

    def update(self, out, labels: torch.Tensor, extras: Optional[Dict[str, float]] = None) -> None:
        """`extras`: per-step numbers from a method (e.g. OGM coefficients), averaged over steps."""
        self.steps += 1
        for key, value in (extras or {}).items():
            self.extras[key] = self.extras.get(key, 0.0) + value
        sums = batch_sums(out, labels)
        n_classes = out.logits.shape[1]
        heads = [out.logits, *out.unimodal.values()]
        with torch.no_grad():
            conf = torch.stack([torch.bincount(labels * n_classes + logits.argmax(1), minlength=n_classes ** 2)
                                for logits in heads]).view(len(heads), n_classes, n_classes)
        self.sums = sums if self.sums is None else self.sums + sums
        self.confusion = conf if self.confusion is None else self.confusion + conf
        self.count += labels.numel()
        if self.keep_features:
            kept = {f"feat_{self.tags[m]}": x.detach().float().cpu() for m, x in out.feat.items()}
            kept["logits"] = out.logits.detach().float().cpu()
            kept.update({f"logits_{self.tags[m]}": x.detach().float().cpu() for m, x in out.unimodal.items()})
            kept["labels"] = labels.cpu()
            self.kept.append(kept)

    def state_dict(self) -> Dict:
        """The sums so far (this process's), for a checkpoint taken inside an epoch (training meters keep no
        features)."""
        assert not self.keep_features, "an evaluation meter is never checkpointed"
        return {"sums": self.sums, "confusion": self.confusion, "count": self.count, "extras": dict(self.extras),
                "steps": self.steps}

    def load_state_dict(self, state: Dict, device) -> None:
        self.sums = None if state["sums"] is None else state["sums"].to(device)
        self.confusion = None if state["confusion"] is None else state["confusion"].to(device)
        self.count, self.extras, self.steps = state["count"], dict(state["extras"]), state["steps"]

    def features(self) -> Optional[Dict[str, torch.Tensor]]:
        """Every process's kept features, concatenated (call on all processes)."""
        if not self.keep_features:
            return None
        mine = {k: torch.cat([b[k] for b in self.kept]) for k in self.kept[0]} if self.kept else {}
        if not distributed.is_distributed():
            return mine
        gathered = [None] * distributed.world_size()
        torch.distributed.all_gather_object(gathered, mine)
        return {k: torch.cat([g[k] for g in gathered if g]) for k in mine}

    def result(self, weights=None) -> Dict[str, float]:
        """Averages (accuracies and F1 in percent), reduced over processes; with `weights` {name: W_m} and
        kept features, also the angle statistics per modality."""
        n_keys = len(self.keys)
        packed = torch.cat([self.sums, torch.tensor([float(self.count)], dtype=torch.float64, device=self.sums.device),
                            self.confusion.flatten().double()])
        packed = distributed.all_reduce_sum(packed).cpu()
        count = int(packed[n_keys].item())
        stats = dict(zip(self.keys, (packed[:n_keys] / max(count, 1)).tolist()))
        for key in self.keys:
            if key.startswith("acc"):
                stats[key] *= 100.0
        confusion = packed[n_keys + 1:].view(self.confusion.shape)
        for head, conf in zip(["", *(f"_{t}" for t in self.tags.values())], confusion):
            stats[f"f1{head}"] = macro_f1(conf)
        stats["count"] = count
        for key, total in self.extras.items():  # identical on every process: the methods reduce first
            stats[key] = total / max(self.steps, 1)
        features = self.features()
        if weights is not None and features:
            for m, tag in self.tags.items():
                for key, value in angle_stats(features[f"feat_{tag}"], features["labels"], weights[m]).items():
                    stats[f"{key}_{tag}"] = value
        self.last_features = features
        return stats


def classifier_weight_norms(model, tags: Dict[str, str]) -> Dict[str, float]:
    """Mean L2 norm of the class rows of each modality's classifier weights."""
    return {f"weight_norm_{tags[m]}": w.detach().norm(dim=1).mean().item()
            for m, w in model.classifier_weights().items()}
