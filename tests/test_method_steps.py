"""The Method interface's train_step: the methods that existed before it train exactly as they did."""
import pytest
import torch

from helpers.legacy_engine import legacy_train_one_epoch
from models import AVClassifier
from test_methods import method_args
from utils.engine import train_one_epoch
from utils.methods import build_method
from utils.precision import Precision

EARLIER_METHODS = ["joint", "audio_only", "visual_only", "ogm", "ogm_ge", "gblending", "greedy", "mslr"]


def batches(n_batches=2, batch=4, n_classes=3):
    g = torch.Generator().manual_seed(5)
    return [(torch.randn(batch, 1, 64, 48, generator=g), torch.randn(batch, 3, 1, 32, 32, generator=g),
             torch.randint(0, n_classes, (batch,), generator=g)) for _ in range(n_batches)]


def trained(loop, method_name, mmcosine):
    torch.manual_seed(0)
    model = AVClassifier(3, "concat", mmcosine=mmcosine)
    method = build_method(method_args(method=method_name, mslr_audio_scale=0.5, greedy_epsilon=0.0, greedy_window=2,
                                      greedy_starts=1, greedy_loss="fused", greedy_main_with_head=False))
    method.configure_model(model)
    optimizer = torch.optim.SGD(method.param_groups(model), lr=0.05, momentum=0.9, weight_decay=1e-4)
    precision = Precision("off", torch.device("cpu"))
    torch.manual_seed(1)  # the OGM-GE noise draws
    stats = []
    for epoch in (1, 2):
        method.start_epoch(epoch, model, optimizer)
        stats.append(loop(model, batches(), optimizer, precision, torch.device("cpu"), epoch, method, model))
    return model, stats


@pytest.mark.parametrize("method_name", EARLIER_METHODS)
@pytest.mark.parametrize("mmcosine", [False, True])
def test_earlier_methods_train_bit_for_bit_as_before(method_name, mmcosine):
    new_loop = lambda *a: train_one_epoch(*a, show_progress=False)  # noqa: E731
    before, stats_before = trained(legacy_train_one_epoch, method_name, mmcosine)
    after, stats_after = trained(new_loop, method_name, mmcosine)
    for (name, p), q in zip(before.state_dict().items(), after.state_dict().values()):
        assert torch.equal(p, q), name
    assert stats_before == stats_after
