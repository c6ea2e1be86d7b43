"""A dataset's modalities as data: each has a name (the key of batches, encoders and outputs), a tag (the suffix
of its logged keys) and `prepare`, which turns the batch tensor as the dataset stores it into the model's input
on the training device. A dataset's items are (x_1, ..., x_M, label) in its modalities' order."""
from dataclasses import dataclass
from typing import Callable, Dict, Sequence, Tuple

import torch

from .visual import frames_to_model_input


@dataclass(frozen=True)
class Modality:
    name: str
    tag: str
    prepare: Callable


def spectrogram_input(audio: torch.Tensor) -> torch.Tensor:
    return audio.float()  # the lossy cache stores float16 features


def frames_input(frames: torch.Tensor) -> torch.Tensor:
    return frames_to_model_input(frames) if frames.dtype == torch.uint8 else frames


# The audio-visual datasets' modalities; the tags keep the keys their runs have always logged (acc_a, acc_v).
AUDIO = Modality("audio", "a", spectrogram_input)
VISUAL = Modality("visual", "v", frames_input)
AUDIO_VISUAL: Tuple[Modality, ...] = (AUDIO, VISUAL)


def names(modalities: Sequence[Modality]) -> Tuple[str, ...]:
    return tuple(m.name for m in modalities)


def tags(modalities: Sequence[Modality]) -> Dict[str, str]:
    return {m.name: m.tag for m in modalities}


# Where a tag is not the modality's name (the audio-visual scripts' a / v), the name for tables and plots.
NAMES_BY_TAG = {m.tag: m.name for m in AUDIO_VISUAL}


def label(tag: str) -> str:
    """The modality a logged key's tag stands for, for people (audio for a)."""
    return NAMES_BY_TAG.get(tag, tag)


# keys `acc_<word>` that are not a modality's accuracy
NOT_MODALITY_ACCURACIES = ("linear", "keep_")


def logged_tags(record: dict, prefix: str) -> list:
    """The modality tags of a metrics record, in logged order, from its keys `<prefix><tag>` (e.g. prefix
    "test_acc_" or "weight_norm_"), leaving out the fused linear and subset accuracies (acc_linear, acc_keep_*)."""
    tags = [key[len(prefix):] for key in record if key.startswith(prefix)]
    return [t for t in tags if not t.startswith(NOT_MODALITY_ACCURACIES)]
