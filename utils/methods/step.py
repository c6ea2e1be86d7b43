"""What one training step gives a method: the batch, the model (as trained and unwrapped), the
optimizer and precision, and the services a method may need to own its step (forward passes
with a modality zeroed, gradients of single losses averaged over processes). The batch's inputs are a dict
{modality name: tensor}, the model's input."""
import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import torch

from .. import distributed


@dataclass
class Step:
    model: torch.nn.Module       # the model to train through (DDP-wrapped when distributed)
    raw_model: torch.nn.Module   # the unwrapped model: its parameters, fusion, classifier
    optimizer: torch.optim.Optimizer
    precision: object            # utils.precision.Precision
    inputs: Dict[str, torch.Tensor]
    labels: torch.Tensor
    epoch: int                   # 1-based
    index: int                   # 0-based step within the epoch
    steps_in_epoch: Optional[int] = None
    flags: Optional[torch.Tensor] = None  # per-sample flags of a resampled train set (Method.train_entries)
    loss_value: Optional[float] = None

    def forward(self, inputs: Optional[Dict[str, torch.Tensor]] = None, raw: bool = False):
        """The model's output on the batch, with `inputs` (a dict of some modalities' inputs, e.g. one zeroed)
        in place of the batch's; `raw` runs the unwrapped model, for steps that take several backward passes
        through one forward."""
        model = self.raw_model if raw else self.model
        with self.precision.autocast():
            return model(self.inputs if inputs is None else {**self.inputs, **inputs})

    @property
    def batch_size(self) -> int:
        return self.labels.shape[0]

    def check_finite(self, loss: torch.Tensor) -> float:
        """The loss as a number; a non-finite one stops the run before any weight changes."""
        value = loss.item()
        if not math.isfinite(value):
            raise FloatingPointError(f"non-finite loss ({value}) at epoch {self.epoch}, step {self.index}: "
                                     "lower --learning_rate (or --scaling)")
        self.loss_value = value
        return value

    def backward_and_step(self, loss: torch.Tensor, before_step=None) -> Dict[str, float]:
        """One backward pass and the optimizer step; `before_step()` may change the gradients between."""
        return self.precision.backward_step(loss, self.optimizer, before_step)

    def gradients(self, loss: torch.Tensor, params: Sequence[torch.nn.Parameter],
                  retain_graph: bool = True) -> List[torch.Tensor]:
        """d loss / d params (zeros where a parameter does not reach the loss), averaged over processes as
        DDP averages them. Leaves every .grad untouched. Use with a forward(raw=True) output."""
        grads = torch.autograd.grad(loss, list(params), retain_graph=retain_graph, allow_unused=True)
        grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]
        if distributed.is_distributed():
            flat = distributed.all_reduce_sum(torch.cat([g.reshape(-1) for g in grads])) / distributed.world_size()
            grads = [chunk.view_as(g) for chunk, g in zip(flat.split([g.numel() for g in grads]), grads)]
        return grads

    def step_with(self, grads: Dict[torch.nn.Parameter, torch.Tensor]) -> None:
        """Set the gradients a method computed itself and take the optimizer step."""
        self.optimizer.zero_grad(set_to_none=True)
        for param, grad in grads.items():
            param.grad = grad
        self.optimizer.step()
