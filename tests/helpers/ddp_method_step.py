"""Run by tests/test_distributed.py under torchrun (and imported by it for the one-process reference):
for each balancing method named (NAME or NAME@EPOCH), start_epoch and two training steps (its own
train_step) on one global batch of 8, in float64, through the project's DDP / SyncBN wrapping, with
small two-stage convolutional encoders (what is checked is how the methods' gradients, scores and
per-epoch passes combine over processes, which the encoders' depth does not change). Methods
see a 16-clip training set (the batch's clips twice) for their per-epoch passes, dealt out over the
processes as the runner does. Rank 0 saves, per method, the parameters after the steps and the logged
numbers."""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import main_CD  # noqa: E402
from utils import distributed  # noqa: E402
from utils.build import prepare_model  # noqa: E402
from utils.methods import build_method  # noqa: E402
from utils.engine import to_device  # noqa: E402
from utils.methods.step import Step  # noqa: E402
from utils.precision import Precision  # noqa: E402
from clips import Clips, passes_over  # noqa: E402  (beside this script)
from tiny_models import TinyEncoder, resnet_classifier  # noqa: E402
from dataset.modalities import AUDIO_VISUAL  # noqa: E402

# Small enough for 8 float64 clips: what the per-epoch passes need (k-means over 6 classes, LFM's batch).
FLAGS = ["--opm_warmup", "0", "--relearn_every", "1", "--relearn_holdout", "0.5", "--valuation_warmup", "0",
         "--lfm_holdout_clips", "4", "--mla_projection", "replace", "--opm_p_exe", "1.0"]


def two_steps(spec, device):
    name, _, epoch = spec.partition("@")
    epoch = int(epoch or 1)
    args = main_CD.build_parser().parse_args(["--method", name, *FLAGS])
    args.fusion_method, args.mmcosine, args.scaling = "concat", False, 10.0
    torch.manual_seed(0)
    model = resnet_classifier(6, "concat", mmcosine=False, audio=TinyEncoder(1, width=16),
                              visual=TinyEncoder(3, width=16))
    method = build_method(args, AUDIO_VISUAL)
    method.configure_model(model)
    g = torch.Generator().manual_seed(1)
    audio, visual = torch.randn(8, 1, 64, 40, generator=g), torch.randn(8, 3, 2, 32, 32, generator=g)
    labels = torch.tensor([0, 1, 2, 3, 4, 5, 0, 1])
    method.split_train(Clips(torch.cat([audio, audio]), torch.cat([visual, visual]), torch.cat([labels, labels])), 0)
    raw, train_model, _ = prepare_model(model, device, False, False)
    method.forward_batches = passes_over(raw)
    method.prepare_batch = lambda batch: to_device(batch, AUDIO_VISUAL, device)
    optimizer = torch.optim.SGD([p for p in raw.parameters() if p.requires_grad], lr=0.1)
    mine = list(range(distributed.rank(), 8, distributed.world_size()))  # the interleaved shard a rank gets
    torch.manual_seed(2)  # the methods' random draws, alike on every process
    logged = [method.start_epoch(epoch, raw, optimizer)]
    for index in range(2):
        train_model.train()
        step = Step(train_model, raw, optimizer, Precision("off", device),
                    {"audio": audio[mine], "visual": visual[mine]}, labels[mine], epoch, index, 2)
        logged.append(method.train_step(step)[1])
    logged.append(method.end_epoch(epoch, raw))
    return {"params": {k: p.detach().clone() for k, p in raw.named_parameters()}, "logged": logged}


def train_methods(specs, device=torch.device("cpu")):
    """{spec: {"params", "logged"}} after each method's epoch start and two steps, in float64."""
    dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        return {spec: two_steps(spec, device) for spec in specs}
    finally:
        torch.set_default_dtype(dtype)


if __name__ == "__main__":
    torch.set_default_dtype(torch.float64)  # before the process group's first tensors
    results = train_methods(sys.argv[2:], distributed.init_from_env("cpu") or torch.device("cpu"))
    if distributed.is_main_process():
        torch.save(results, sys.argv[1])
    distributed.cleanup()
