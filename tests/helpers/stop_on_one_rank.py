"""Run by tests/test_distributed.py under torchrun: main_CD.py with its arguments, where only the process of rank 1
is sent SIGTERM, at the end of epoch STOP_EPOCH's first training step (a scheduler's signal reaches the processes
at different moments). Every process must still stop after that same step: the stop is agreed at each step's end."""
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import main_CD  # noqa: E402
import utils.runner  # noqa: E402
import utils.stop  # noqa: E402
from utils import distributed  # noqa: E402

STOP_EPOCH = int(os.environ["STOP_EPOCH"])
real_requested, real_train_one_epoch = utils.stop.requested, utils.runner.train_one_epoch
current = {"epoch": 0, "sent": False}


def train_one_epoch(*args, **kwargs):
    current["epoch"] = args[5]  # (model, loader, optimizer, precision, device, epoch, ...)
    return real_train_one_epoch(*args, **kwargs)


def requested():
    if distributed.rank() == 1 and current["epoch"] == STOP_EPOCH and not current["sent"]:
        current["sent"] = True
        os.kill(os.getpid(), signal.SIGTERM)
    return real_requested()


if __name__ == "__main__":
    utils.runner.train_one_epoch = train_one_epoch
    utils.stop.requested = requested
    main_CD.main(sys.argv[1:])
