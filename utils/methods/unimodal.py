"""Uni-modal baselines: the same encoder, head and recipe, trained on one modality alone (the
reference point for how far joint training under-optimises each encoder). The fused accuracy
these runs report is the uni-modal model's; the other modality's columns stay at chance."""
from .base import Method


class AudioOnly(Method):
    name = "audio_only"
    modality = "audio"

    def configure_model(self, model) -> None:
        model.keep_only(self.modality)


class VisualOnly(AudioOnly):
    name = "visual_only"
    modality = "visual"
