"""The interface a balancing method implements. The engine calls these hooks and knows
nothing else about methods; the joint-training baseline is this class itself.

Per epoch: start_epoch, train_entries (a resampled train set, or None), then train_step for every
batch, then end_epoch. The default train_step
is one forward, `loss`, one backward, `before_step`, one optimizer step; a method that needs
more (several backward passes, extra forward passes with a modality zeroed) overrides it and
uses the services of its `Step`."""
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

from dataset.errors import DataError

from .. import distributed
from .step import Step


def encoder_params(model, modality: str) -> List[torch.nn.Parameter]:
    return [p for p in model.encoders[modality].parameters() if p.requires_grad]


class Method:
    """Joint training: cross-entropy on the fused logits, one learning rate, no gradient changes."""

    name = "joint"
    # Set to a reason where the method cannot yet run on several processes: torchrun is then refused.
    single_process_only: Optional[str] = None
    # Set where the method owns its backward passes (no fp16 gradient scaler then).
    owns_backward = False
    # The last epoch (0-based, included) the method acts in when --modulation_ends is not given; None: every epoch.
    default_window_end: Optional[int] = None
    # Set where train_entries gives a resampled training set (copies of clips with flags).
    resamples_train = False
    # How the sampler treats train_entries: in the order given instead of shuffled (the method orders them), and
    # batches that never mix two flags (a batch ends where the flag changes). Both set by resampling methods.
    ordered_entries = False
    homogeneous_batches = False
    # How many modalities the method is defined for (its authors' code or paper); None: any number.
    n_modalities: Optional[int] = None

    def __init__(self, args, modalities=("audio", "visual"), tags=None):
        self.args = args
        self.modalities = tuple(modalities)   # the dataset's modality names, in order
        self.tags = dict(tags) if tags is not None else {m: m for m in self.modalities}  # suffixes of logged keys
        if self.n_modalities is not None and len(self.modalities) != self.n_modalities:
            raise DataError(f"--method {self.name} is defined for {self.n_modalities} modalities and this dataset has "
                            f"{len(self.modalities)} ({', '.join(self.modalities)}): choose another --method")
        self.measure = None        # set by the runner: dataset -> statistics (see start_epoch)
        self.forward_batches = None  # set by the runner: (dataset, indices) -> (output, labels) per batch, no grad
        self.prepare_batch = None    # set by the runner: a collated batch -> ({name: model input on the device}, labels)
        self.logged = {}  # numbers the step's loss computed, for the epoch's log (returned by before_step)
        if self.single_process_only and distributed.world_size() > 1:
            raise DataError(f"--method {self.name} runs in one process only ({self.single_process_only}): "
                            "launch it without torchrun")
        if self.owns_backward and getattr(args, "amp", "off") == "fp16":
            raise DataError(f"--method {self.name} takes several backward passes per step, which the fp16 gradient "
                            "scaler does not follow: use --amp bf16 or --amp off")

    def active(self, epoch: int) -> bool:
        """Whether the method acts in `epoch` (1-based): --modulation_starts .. --modulation_ends index the
        0-based epochs of the authors' loops; without --modulation_ends, the method's own default window."""
        ends = getattr(self.args, "modulation_ends", None)
        ends = self.default_window_end if ends is None else ends
        return ends is None or getattr(self.args, "modulation_starts", 0) <= epoch - 1 <= ends

    @classmethod
    def add_args(cls, group, modalities) -> None:
        """The method's own flags (named after it), added to the parser's method group; a flag per modality is
        named after the entry script's modality names (`modalities`), its default taken by position."""

    def split_train(self, train, seed: int, val=None):
        """(clips to train on, held-out clips or None). Methods that need held-out data use `val`, the
        --val_split validation set, when there is one, and otherwise hold part of `train` out."""
        return train, None

    def configure_model(self, model) -> None:
        """Called once on the fresh model, before weights are loaded and the optimizer is built."""

    def param_groups(self, model) -> List[Dict]:
        """Optimizer parameter groups (MSLR gives each encoder its own learning rate)."""
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]

    def new_param_groups(self) -> List[Dict]:
        """Parameter groups of modules the method added to the model since the last call (AUG's learners), for the
        runner to put in the optimizer; asked after start_epoch and after end_epoch. A resumed run's model is built
        with them (the head spec in its checkpoint), so param_groups must then list them, in the same groups."""
        return []

    def start_epoch(self, epoch: int, model, optimizer) -> Dict[str, float]:
        """Called before each training epoch (may change the optimizer's learning rates).
        `self.measure(dataset)`, set by the runner, evaluates the model on a dataset and returns its
        statistics (losses and accuracies per head). Returns numbers to log for the epoch."""
        return {}

    def train_entries(self, epoch: int) -> Optional[List[Tuple[int, int]]]:
        """The epoch's training samples as (clip index, flag) entries, each drawn once in a shuffled order
        (in the order given where `ordered_entries`; the flag reaches train_step as step.flags), or None: every
        clip once. Called after start_epoch; it must depend only on what a checkpoint restores, so a resumed run
        draws the same."""
        return None

    def train_step(self, step: Step):
        """One training step on step's batch. Returns (model output on the batch, numbers to average into
        the epoch's log)."""
        out = step.forward()
        loss = self.loss(out, step.labels, step.epoch)
        step.check_finite(loss)
        extras = step.backward_and_step(loss, lambda: self.before_step(step.raw_model, out, step.labels, step.epoch))
        return out, extras

    def end_epoch(self, epoch: int, model) -> Dict[str, float]:
        """Called after each training epoch, before evaluation. Returns numbers to log for the epoch."""
        return {}

    def loss(self, out, labels: torch.Tensor, epoch: int) -> torch.Tensor:
        return F.cross_entropy(out.logits.float(), labels)

    def before_step(self, model, out, labels: torch.Tensor, epoch: int) -> Dict[str, float]:
        """Called after backward (gradients unscaled) and before the optimizer step; may change
        gradients. Returns numbers to average into the epoch's log (e.g. modulation coefficients); by
        default what `loss` left in self.logged."""
        return self.logged

    def state_dict(self) -> Dict:
        return {}

    def load_state_dict(self, state: Dict) -> None:
        pass

    # What the runner sets or builds again on every start (flags, names, its services), never a checkpoint's.
    _REBUILT = frozenset({"args", "modalities", "tags", "measure", "forward_batches", "prepare_batch"})

    def epoch_state(self) -> Dict:
        """What start_epoch and the steps so far left in the method that state_dict does not hold, for a checkpoint
        taken inside an epoch: every attribute whose value is plain data (tensors, numbers, strings, and lists,
        tuples and dicts of them). Anything else a method holds (datasets, modules) is built again by __init__,
        split_train and configure_model."""
        return {k: v for k, v in vars(self).items() if k not in self._REBUILT and is_plain(v)}

    def load_epoch_state(self, state: Dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)

    def resume_epoch(self, epoch: int, model) -> None:
        """Called instead of start_epoch when a run resumes inside an epoch, after the method's state and epoch
        state are restored: put back into the model what start_epoch puts there and its state does not keep."""


def is_plain(value) -> bool:
    if isinstance(value, torch.nn.Parameter):  # the model's own, restored with the model
        return False
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return True
    if isinstance(value, (list, tuple)):
        return all(is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, (str, int)) and is_plain(v) for k, v in value.items())
    return False
