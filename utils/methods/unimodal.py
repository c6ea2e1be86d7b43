"""Uni-modal baselines: the same encoder, head and recipe, trained on one modality alone (the
reference point for how far joint training under-optimises each encoder). The fused accuracy
these runs report is the uni-modal model's; the other modalities' columns stay at chance.
`--method unimodal --modality NAME` (or `--modality NAME` alone) for any of the dataset's modalities;
audio_only / visual_only are the audio-visual scripts' names for it."""
from dataset.errors import DataError

from .base import Method


class Unimodal(Method):
    name = "unimodal"
    modality = None  # --modality, unless the method's name fixes it

    def __init__(self, args, *context):
        super().__init__(args, *context)
        self.kept = self.modality or getattr(args, "modality", None)
        if self.kept is None:
            raise DataError(f"--method unimodal needs --modality, one of {', '.join(self.modalities)}")
        if self.kept not in self.modalities:
            raise DataError(f"--method {self.name} trains the {self.kept} encoder and this dataset has "
                            f"{', '.join(self.modalities)}: use --modality NAME with one of them")

    def configure_model(self, model) -> None:
        model.keep_only(self.kept)


class AudioOnly(Unimodal):
    name = "audio_only"
    modality = "audio"


class VisualOnly(Unimodal):
    name = "visual_only"
    modality = "visual"
