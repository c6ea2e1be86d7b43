"""Speaker verification on trial lists: every unique utterance is embedded once (its fused
and per-modality logit vectors), each trial is scored by the cosine similarity of its two
utterances' vectors, and each list gets EER (%) and minDCF (P_target 0.01, C_miss = C_fa = 1).

Per-modality EERs (audio logits alone, visual logits alone) show how much each encoder learned,
as the per-modality accuracies do for classification."""
from contextlib import nullcontext
from typing import Dict

import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import distributed
from .engine import to_device
from .verification import eer, min_dcf

HEADS = {"": "logits", "_a": "logits_a", "_v": "logits_v"}


@torch.no_grad()
def embed(model, loader, n_utterances: int, device, precision=None, show_progress: bool = False,
          channels_last: bool = False) -> Dict[str, torch.Tensor]:
    """{head suffix: (n_utterances, n_classes) float32 on the CPU}. The loader's third field is the
    utterance's row; rows from all processes are summed into place, so every process gets them all."""
    model.eval()
    out_rows = {}
    for batch in tqdm(loader, desc="embed", leave=False, dynamic_ncols=True, disable=not show_progress):
        audio, visual, rows = to_device(batch, device, channels_last)
        with precision.autocast() if precision is not None else nullcontext():
            out = model(audio, visual)
        for suffix, field in HEADS.items():
            logits = getattr(out, field).float()
            if suffix not in out_rows:
                out_rows[suffix] = torch.zeros(n_utterances, logits.shape[1], dtype=torch.float32, device=device)
            out_rows[suffix][rows] = logits
    if not out_rows:  # this process got no utterances; it still joins the reduction with zeros
        n_classes = model.fusion.classifier_weights()[0].shape[0]
        out_rows = {s: torch.zeros(n_utterances, n_classes, device=device) for s in HEADS}
    return {s: distributed.all_reduce_sum(t).cpu() for s, t in out_rows.items()}


def cosine_scores(vectors: torch.Tensor, first, second) -> torch.Tensor:
    """Cosine similarity of rows first[i] and second[i] of `vectors`, in float64."""
    v = vectors.double()
    return F.cosine_similarity(v[torch.as_tensor(first)], v[torch.as_tensor(second)], dim=1)


def verification_stats(trial_set, embeddings: Dict[str, torch.Tensor]) -> Dict[str, float]:
    """<list>_eer{,_a,_v} and <list>_min_dcf{,_a,_v} for every list; eer{,_a,_v} and min_dcf{,_a,_v}
    repeat the first list's numbers (the first list picks best.pt)."""
    stats = {}
    for name in trial_set.lists:
        labels, first, second = trial_set.pairs(name)
        for suffix, vectors in embeddings.items():
            scores = cosine_scores(vectors, first, second).numpy()
            stats[f"{name}_eer{suffix}"] = eer(scores, labels)
            stats[f"{name}_min_dcf{suffix}"] = min_dcf(scores, labels)
    first_list = next(iter(trial_set.lists))
    for suffix in embeddings:
        for metric in ("eer", "min_dcf"):
            stats[f"{metric}{suffix}"] = stats[f"{first_list}_{metric}{suffix}"]
    return stats


def list_names(stats: Dict[str, float]):
    """The trial lists that `stats` covers, in order (names are recovered from the fixed key suffix)."""
    return [key[:-len("_eer_v")] for key in stats if key.endswith("_eer_v")]


def describe(prefix: str, stats: Dict[str, float]) -> str:
    parts = [f"{name} EER {stats[f'{name}_eer']:.2f}% minDCF {stats[f'{name}_min_dcf']:.3f} "
             f"(audio EER {stats[f'{name}_eer_a']:.2f}%, visual {stats[f'{name}_eer_v']:.2f}%)"
             for name in list_names(stats)]
    return f"{prefix} " + "; ".join(parts)
