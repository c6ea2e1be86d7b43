"""The interface a balancing method implements. The engine calls these hooks and knows
nothing else about methods; the joint-training baseline is this class itself."""
from typing import Dict, List

import torch
import torch.nn.functional as F


def encoder_params(model, modality: str) -> List[torch.nn.Parameter]:
    encoder = model.audio_encoder if modality == "audio" else model.visual_encoder
    return [p for p in encoder.parameters() if p.requires_grad]


class Method:
    """Joint training: cross-entropy on the fused logits, one learning rate, no gradient changes."""

    name = "joint"

    def __init__(self, args):
        self.args = args
        self.measure = None

    def split_train(self, train, seed: int, val=None):
        """(clips to train on, held-out clips or None). Methods that need held-out data use `val`, the
        --val_split validation set, when there is one, and otherwise hold part of `train` out."""
        return train, None

    def configure_model(self, model) -> None:
        """Called once on the fresh model, before weights are loaded and the optimizer is built."""

    def param_groups(self, model) -> List[Dict]:
        """Optimizer parameter groups (MSLR gives each encoder its own learning rate)."""
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]

    def start_epoch(self, epoch: int, model, optimizer) -> Dict[str, float]:
        """Called before each training epoch (may change the optimizer's learning rates).
        `self.measure(dataset)`, set by the runner, evaluates the model on a dataset and returns its
        statistics (losses and accuracies per head). Returns numbers to log for the epoch."""
        return {}

    def loss(self, out, labels: torch.Tensor, epoch: int) -> torch.Tensor:
        return F.cross_entropy(out.logits.float(), labels)

    def before_step(self, model, out, labels: torch.Tensor, epoch: int) -> Dict[str, float]:
        """Called after backward (gradients unscaled) and before the optimizer step; may change
        gradients. Returns numbers to average into the epoch's log (e.g. modulation coefficients)."""
        return {}

    def state_dict(self) -> Dict:
        return {}

    def load_state_dict(self, state: Dict) -> None:
        pass
