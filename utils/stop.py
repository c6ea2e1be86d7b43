"""A scheduler's stop (SIGTERM, or SLURM's SIGUSR1/SIGUSR2 warning before a preemption or the time limit) taken
at the next training step's end instead of wherever the signal lands: while an epoch runs, the signal handler only
records the request (`request`), and the training loop asks `requested()` after each step, then writes a checkpoint
of the epoch so far (utils/step_checkpoint.py). Outside an epoch, and on a second signal, the stop is immediate."""
import signal
from contextlib import contextmanager

import torch

from . import distributed

_state = {"deferring": False, "requested": False, "signal": "SIGTERM"}


@contextmanager
def deferred():
    """While the block runs, a stop signal is recorded for the loop to act on at a step boundary."""
    _state["deferring"] = True
    try:
        yield
    finally:
        _state["deferring"] = False


def defer(signum: int) -> bool:
    """Called by the signal handler: True where the stop is recorded for later (the first signal inside an epoch),
    False where the handler must stop the run at once."""
    if not _state["deferring"] or _state["requested"]:
        return False
    _state["requested"], _state["signal"] = True, signal.Signals(signum).name
    return True


def requested() -> bool:
    """Whether any process has been asked to stop; under torchrun every process gets the same answer, so all stop
    after the same step (a scheduler signals them at slightly different moments)."""
    local = _state["requested"]
    if not distributed.is_distributed():
        return local
    flag = torch.tensor([float(local)], device=_device())
    return distributed.all_reduce_sum(flag).item() > 0


def signal_name() -> str:
    """The name of the signal that asked for the stop (SIGTERM, SIGUSR1, ...)."""
    return _state["signal"]


def clear() -> None:
    _state["requested"], _state["signal"] = False, "SIGTERM"


def _device():
    return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() and \
        torch.distributed.get_backend() == "nccl" else torch.device("cpu")
