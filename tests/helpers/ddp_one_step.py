"""Run by tests/test_distributed.py, alone or under torchrun: for each fusion named, one training step
of the audio-visual model through the project's DDP/SyncBN wrapping, in float64 (float32 BatchNorm
gradients at these tiny batch sizes are too ill-conditioned to compare process counts).
Rank 0 saves, per fusion, the averaged parameter gradients and the updated BatchNorm buffers."""
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_models import resnet_classifier  # noqa: E402  (beside this script)
from utils import distributed  # noqa: E402
from utils.build import prepare_model  # noqa: E402

torch.set_default_dtype(torch.float64)
device = distributed.init_from_env("cpu") or torch.device("cpu")


def one_step(fusion):
    torch.manual_seed(0)
    raw, train_model, _ = prepare_model(resnet_classifier(6, fusion, mmcosine=True), device, False, False)
    g = torch.Generator().manual_seed(1)
    audio, visual = torch.randn(8, 1, 64, 40, generator=g), torch.randn(8, 3, 2, 32, 32, generator=g)
    labels = torch.arange(8) % 6
    mine = list(range(distributed.rank(), 8, distributed.world_size()))  # the interleaved shard a rank gets
    out = train_model({"audio": audio[mine], "visual": visual[mine]})
    F.cross_entropy(out.logits, labels[mine]).backward()
    return {"grads": {k: p.grad for k, p in raw.named_parameters() if p.requires_grad},
            "buffers": {k: b for k, b in raw.named_buffers()}}


results = {fusion: one_step(fusion) for fusion in sys.argv[2:]}
if distributed.is_main_process():
    torch.save(results, sys.argv[1])
distributed.cleanup()
