"""Encoders whose features differ in size (image 512 + text 1024, as BalanceBenchmark's Food-101 model): sum and
concat fusion take them, per-modality blocks of the fused head score each, the uni-modal logits still sum to the
fused ones (MMCosine or not), and the fusions that mix features element by element refuse them in one line."""
import pytest
import torch
from torch import nn

from models import MultiModalClassifier


class Features(nn.Module):
    """(B, d_in) -> (B, out_dim): a linear encoder that says its feature size."""

    def __init__(self, d_in: int, out_dim: int):
        super().__init__()
        self.out_dim = out_dim
        self.fc = nn.Linear(d_in, out_dim)

    def forward(self, x):
        return self.fc(x)


def model(fusion, mmcosine=False):
    torch.manual_seed(0)
    return MultiModalClassifier(5, {"image": Features(3, 6), "text": Features(4, 10)}, fusion, mmcosine=mmcosine)


@pytest.mark.parametrize("fusion", ["sum", "concat"])
@pytest.mark.parametrize("mmcosine", [False, True])
def test_features_of_two_sizes_are_scored_by_their_own_blocks(fusion, mmcosine):
    net = model(fusion, mmcosine)
    inputs = {"image": torch.randn(7, 3), "text": torch.randn(7, 4)}
    out = net(inputs)
    assert net.feature_dims() == {"image": 6, "text": 10}
    assert {m: tuple(w.shape) for m, w in net.classifier_weights().items()} == {"image": (5, 6), "text": (5, 10)}
    torch.testing.assert_close(out.unimodal["image"] + out.unimodal["text"], out.logits, atol=1e-5, rtol=1e-5)
    if fusion == "concat" and not mmcosine:  # the text block is the columns after the image's 6
        w, b = net.fusion.fc_out.weight, net.fusion.fc_out.bias
        torch.testing.assert_close(out.unimodal["text"], out.feat["text"] @ w[:, 6:].T + b / 2)
    net.add_unimodal_heads()
    heads = net(inputs).heads
    assert heads["image"].shape == heads["text"].shape == (7, 5)


@pytest.mark.parametrize("fusion", ["film", "gated"])
def test_fusions_that_mix_features_element_by_element_refuse_two_sizes(fusion):
    with pytest.raises(ValueError, match="image 6, text 10: use encoders of one feature size"):
        model(fusion)


def test_a_head_shared_by_the_modalities_refuses_two_sizes():
    net = model("concat")
    with pytest.raises(ValueError, match="needs features of one size"):
        net.set_head({"shared": {}})
