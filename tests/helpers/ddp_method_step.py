"""Run by tests/test_distributed.py, alone or under torchrun: for each balancing method named, two
training steps (its own train_step) on one global batch of 8, in float64, through the project's DDP /
SyncBN wrapping. Rank 0 saves, per method, the parameters after the steps and the logged numbers."""
import sys
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from models import AVClassifier  # noqa: E402
from utils import distributed  # noqa: E402
from utils.build import prepare_model  # noqa: E402
from utils.methods import build_method  # noqa: E402
from utils.methods.step import Step  # noqa: E402
from utils.precision import Precision  # noqa: E402

out_path, method_names = sys.argv[1], sys.argv[2:]
torch.set_default_dtype(torch.float64)
device = distributed.init_from_env("cpu") or torch.device("cpu")


def two_steps(method_name):
    args = SimpleNamespace(method=method_name, amp="off", random_seed=0, modulation_starts=0, modulation_ends=None,
                           mmpareto_gamma=1.5, mmpareto_variant="authors", agm_alpha=1.5, inforeg_beta_audio=0.95,
                           inforeg_beta_visual=0.1, inforeg_threshold=0.05, opm_q_base=0.5, opm_lambda=0.5,
                           opm_p_exe=1.0, opm_warmup=0)
    torch.manual_seed(0)
    model = AVClassifier(6, "concat", mmcosine=False)
    method = build_method(args)
    method.configure_model(model)
    raw, train_model, _ = prepare_model(model, device, False, False)
    optimizer = torch.optim.SGD([p for p in raw.parameters() if p.requires_grad], lr=0.1)
    g = torch.Generator().manual_seed(1)
    audio, visual = torch.randn(8, 1, 64, 40, generator=g), torch.randn(8, 3, 2, 32, 32, generator=g)
    labels = torch.tensor([0, 1, 2, 3, 4, 5, 0, 1])
    mine = list(range(distributed.rank(), 8, distributed.world_size()))  # the interleaved shard a rank gets
    logged = []
    torch.manual_seed(2)  # the methods' random draws, alike on every process
    method.start_epoch(1, raw, optimizer)
    for index in range(2):
        train_model.train()
        step = Step(train_model, raw, optimizer, Precision("off", device), audio[mine], visual[mine], labels[mine], 1,
                    index)
        logged.append(method.train_step(step)[1])
    logged.append(method.end_epoch(1, raw))
    return {"params": {k: p.detach().clone() for k, p in raw.named_parameters()}, "logged": logged}


results = {name: two_steps(name) for name in method_names}
if distributed.is_main_process():
    torch.save(results, out_path)
distributed.cleanup()
