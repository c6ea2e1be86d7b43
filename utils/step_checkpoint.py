"""A checkpoint inside an epoch: what last.pt adds (under "partial") when a stop arrives between two training steps
(utils/stop.py), so that --resume continues from the next step to the numbers of an uninterrupted run. Besides the
weights, optimizer and method state every last.pt holds, it keeps each process's epoch meter (the sums logged at
the epoch's end), its random number generators, and the method's epoch state (what its start_epoch computed and
its steps changed), with the epoch's logged start numbers and time so far."""
import random
from typing import Dict, List

import numpy as np
import torch

from dataset.errors import DataError

from . import distributed

_ON_DEVICE = "__on_device__"  # marks a tensor that lived on an accelerator (checkpoints are read onto the CPU)


def pack(value):
    """`value` with every accelerator tensor moved to the CPU and marked, so `unpack` puts it back."""
    if torch.is_tensor(value):
        return {_ON_DEVICE: value.detach().cpu()} if value.device.type != "cpu" else value.detach().clone()
    if isinstance(value, dict):
        return {k: pack(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(pack(v) for v in value)
    return value


def unpack(value, device):
    if isinstance(value, dict):
        if set(value) == {_ON_DEVICE}:
            return value[_ON_DEVICE].to(device)
        return {k: unpack(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(unpack(v, device) for v in value)
    return value


def rng_state(device) -> Dict:
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, gauss]}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: Dict, device) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    kind, keys, position, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def capture(epoch: int, steps: int, steps_in_epoch: int, meter, method, device, record: Dict, lrs: Dict,
            seconds: float) -> Dict:
    """The "partial" entry of last.pt (call on every process: each one's meter, generators and method epoch state
    are gathered)."""
    mine = {"meter": pack(meter.state_dict()), "rng": rng_state(device), "method": pack(method.epoch_state())}
    per_process: List = [mine]
    if distributed.is_distributed():
        per_process = [None] * distributed.world_size()
        torch.distributed.all_gather_object(per_process, mine)
    return {"epoch": epoch, "steps": steps, "steps_in_epoch": steps_in_epoch, "processes": per_process,
            "record": dict(record), "lrs": dict(lrs), "seconds": seconds}


def restore(partial: Dict, meter, method, model, device, path) -> None:
    """This process's meter and method epoch state from `partial`, then the method's resume_epoch (its generators:
    `restore_generators`, once the epoch's training entries are drawn)."""
    n = len(partial["processes"])
    if n != distributed.world_size():
        raise DataError(f"{path} stopped inside epoch {partial['epoch']} (step {partial['steps']} of "
                        f"{partial['steps_in_epoch']}) with {n} process(es), and this run has {distributed.world_size()}: "
                        f"resume it with {n} (each process continues its own share of the epoch)")
    mine = partial["processes"][distributed.rank()]
    meter.load_state_dict(unpack(mine["meter"], device), device)
    method.load_epoch_state(unpack(mine["method"], device))
    method.resume_epoch(partial["epoch"], model)


def restore_generators(partial: Dict, device) -> None:
    set_rng_state(partial["processes"][distributed.rank()]["rng"], device)
