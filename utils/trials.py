"""Speaker verification on trial lists: every unique utterance is embedded once (its fused
and per-modality logit vectors), each trial is scored by the cosine similarity of its two
utterances' vectors, and each list gets EER (%) and minDCF (P_target 0.01, C_miss = C_fa = 1).

Per-modality EERs (each modality's logits alone; keys end in its tag) show how much each encoder learned,
as the per-modality accuracies do for classification."""
from contextlib import nullcontext
from typing import Dict

import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import distributed
from dataset.modalities import AUDIO_VISUAL

from .engine import to_device
from .verification import eer, min_dcf


@torch.no_grad()
def embed(model, loader, n_utterances: int, device, precision=None, show_progress: bool = False,
          channels_last: bool = False, modalities=AUDIO_VISUAL) -> Dict[str, torch.Tensor]:
    """{head suffix ("", "_<tag>"): (n_utterances, n_classes) float32 on the CPU}. The loader's field after the
    modalities is the utterance's row; rows from all processes are summed into place, so every process gets them all."""
    model.eval()
    out_rows = {}
    suffixes = ["", *(f"_{m.tag}" for m in modalities)]
    for batch in tqdm(loader, desc="embed", leave=False, dynamic_ncols=True, disable=not show_progress):
        inputs, rows = to_device(batch, modalities, device, channels_last)
        with precision.autocast() if precision is not None else nullcontext():
            out = model(inputs)
        for suffix, logits in zip(suffixes, (out.logits, *out.unimodal.values())):
            logits = logits.float()
            if suffix not in out_rows:
                out_rows[suffix] = torch.zeros(n_utterances, logits.shape[1], dtype=torch.float32, device=device)
            out_rows[suffix][rows] = logits
    if not out_rows:  # this process got no utterances; it still joins the reduction with zeros
        n_classes = next(iter(model.fusion.classifier_weights().values())).shape[0]
        out_rows = {s: torch.zeros(n_utterances, n_classes, device=device) for s in suffixes}
    return {s: distributed.all_reduce_sum(t).cpu() for s, t in out_rows.items()}


def cosine_scores(vectors: torch.Tensor, first, second) -> torch.Tensor:
    """Cosine similarity of rows first[i] and second[i] of `vectors`, in float64."""
    v = vectors.double()
    return F.cosine_similarity(v[torch.as_tensor(first)], v[torch.as_tensor(second)], dim=1)


def verification_stats(trial_set, embeddings: Dict[str, torch.Tensor]) -> Dict[str, float]:
    """<list>_eer{,_<tag>...} and <list>_min_dcf{,_<tag>...} for every list; eer{,_<tag>...} and
    min_dcf{,_<tag>...} repeat the first list's numbers (the first list picks best.pt)."""
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
    """The trial lists that `stats` covers, in order (names are recovered from the fused EER's key suffix)."""
    return [key[:-len("_eer")] for key in stats if key.endswith("_eer")]


def describe(prefix: str, stats: Dict[str, float], modalities=AUDIO_VISUAL) -> str:
    def each(name):
        return ", ".join(f"{m.name} EER {stats[f'{name}_eer_{m.tag}']:.2f}%" for m in modalities)
    parts = [f"{name} EER {stats[f'{name}_eer']:.2f}% minDCF {stats[f'{name}_min_dcf']:.3f} ({each(name)})"
             for name in list_names(stats)]
    return f"{prefix} " + "; ".join(parts)
