"""The Method interface's train_step: the methods that existed before it train exactly as they did (on the
audio-visual pair, and those defined for any number of modalities on three)."""
import pytest
import torch

from dataset.modalities import AUDIO_VISUAL
from helpers.legacy_engine import legacy_train_one_epoch
from helpers.tiny_models import THREE, resnet_classifier, tiny_classifier
from test_methods import build_method, method_args
from utils.engine import train_one_epoch
from utils.precision import Precision

EARLIER_METHODS = ["joint", "audio_only", "visual_only", "ogm", "ogm_ge", "gblending", "greedy", "mslr"]
ANY_NUMBER = ["joint", "gblending", "mslr"]  # of EARLIER_METHODS, those defined for any number of modalities


def batches(modalities, n_batches=2, batch=4, n_classes=3):
    g = torch.Generator().manual_seed(5)
    shapes = {"audio": (1, 64, 48), "visual": (3, 1, 32, 32), "x": (1, 32, 24), "y": (3, 2, 16, 16), "z": (1, 32, 24)}
    return [(*(torch.randn(batch, *shapes[m.name], generator=g) for m in modalities),
             torch.randint(0, n_classes, (batch,), generator=g)) for _ in range(n_batches)]


def trained(loop, method_name, mmcosine, modalities=AUDIO_VISUAL):
    torch.manual_seed(0)
    if modalities == AUDIO_VISUAL:
        model = resnet_classifier(3, "concat", mmcosine=mmcosine)
    else:
        model = tiny_classifier(3, "concat", mmcosine=mmcosine, modalities=modalities)
    scales = {f"mslr_{modalities[0].name}_scale": 0.5}
    method = build_method(method_args(method_name, modalities, greedy_epsilon=0.0, greedy_window=2, greedy_starts=1,
                                      greedy_loss="fused", greedy_main_with_head=False, **scales), modalities)
    method.configure_model(model)
    optimizer = torch.optim.SGD(method.param_groups(model), lr=0.05, momentum=0.9, weight_decay=1e-4)
    precision = Precision("off", torch.device("cpu"))
    torch.manual_seed(1)  # the OGM-GE noise draws
    stats = []
    for epoch in (1, 2):
        method.start_epoch(epoch, model, optimizer)
        stats.append(loop(model, batches(modalities), optimizer, precision, torch.device("cpu"), epoch, method, model,
                          modalities))
    return model, stats


def check_same_training(method_name, mmcosine, modalities):
    new_loop = lambda *a: train_one_epoch(*a, show_progress=False)  # noqa: E731
    before, stats_before = trained(legacy_train_one_epoch, method_name, mmcosine, modalities)
    after, stats_after = trained(new_loop, method_name, mmcosine, modalities)
    for (name, p), q in zip(before.state_dict().items(), after.state_dict().values()):
        assert torch.equal(p, q), name
    assert stats_before == stats_after


@pytest.mark.parametrize("method_name", EARLIER_METHODS)
@pytest.mark.parametrize("mmcosine", [False, True])
def test_earlier_methods_train_bit_for_bit_as_before(method_name, mmcosine):
    check_same_training(method_name, mmcosine, AUDIO_VISUAL)


@pytest.mark.parametrize("method_name", ANY_NUMBER)
def test_earlier_methods_train_three_modalities_alike_through_both_loops(method_name):
    check_same_training(method_name, True, THREE)
