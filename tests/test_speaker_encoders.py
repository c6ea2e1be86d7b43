"""The VoxCeleb-setting encoders: shapes, and their pieces against direct computations."""
import pytest
import torch

from helpers.tiny_models import resnet_classifier
from models.speaker_encoders import AttentivePool, FaceEncoder, PreEmphasis, SEBasicBlock, SpeakerEncoder


def test_pre_emphasis_formula():
    x = torch.tensor([[1.0, 2.0, 4.0, 3.0]])
    y = PreEmphasis(0.5)(x)
    assert torch.allclose(y, torch.tensor([[1.0 - 0.5 * 2.0, 2.0 - 0.5, 4.0 - 1.0, 3.0 - 2.0]]))


def test_attentive_pooling_is_a_weighted_mean_with_or_without_the_std():
    torch.manual_seed(0)
    asp = AttentivePool(channels=6, hidden=4).eval()
    sap = AttentivePool(channels=6, hidden=4, with_std=False).eval()
    sap.load_state_dict(asp.state_dict())
    x = torch.randn(2, 6, 9)
    with torch.no_grad():
        w = asp.attention(x)
        out, mean_only = asp(x), sap(x)
    assert torch.allclose(w.sum(dim=2), torch.ones(2, 6), atol=1e-6)
    assert mean_only.shape == (2, 6) and torch.equal(mean_only, out[:, :6])
    for b in range(2):
        for c in range(6):
            mean = sum(w[b, c, t] * x[b, c, t] for t in range(9))
            var = sum(w[b, c, t] * (x[b, c, t] - mean) ** 2 for t in range(9))
            assert torch.allclose(out[b, c], mean, atol=1e-5)
            assert torch.allclose(out[b, 6 + c], var.clamp(min=1e-5).sqrt(), atol=1e-4)


@pytest.mark.parametrize("n_mels,pooling", [(40, "sap"), (64, "asp")])
def test_speaker_encoder_on_waveforms_of_any_length(n_mels, pooling):
    torch.manual_seed(0)
    enc = SpeakerEncoder(n_mels=n_mels, pooling=pooling).eval()
    assert enc.fc.in_features == 256 * (n_mels // 8) * (2 if pooling == "asp" else 1)
    with torch.no_grad():
        feats = enc.features(torch.randn(2, 16000))
        assert feats.shape == (2, 1, n_mels, 101)
        # instance norm: every mel band of every utterance is standardised over time
        assert torch.allclose(feats.mean(dim=3), torch.zeros(2, 1, n_mels), atol=1e-4)
        assert enc(torch.randn(2, 16000)).shape == enc(torch.randn(2, 40000)).shape == (2, 512)


def test_the_release_default_block_order_is_conv_relu_bn():
    """models/vox/ResNetBlocks.py: out = bn1(relu(conv1(x))); bn2(conv2(out)); SE; + residual; relu."""
    torch.manual_seed(0)
    enc = SpeakerEncoder()
    conv, norm = enc.stem[0], enc.stem[2]
    assert conv.bias is not None and isinstance(norm, torch.nn.BatchNorm2d)  # the release's stem conv has a bias
    block = SEBasicBlock(8, 8).eval()
    for bn in (block.first[2], block.bn2):
        bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2), bn.weight.data.uniform_(0.5, 2)
    x = torch.randn(2, 8, 6, 5)
    with torch.no_grad():
        out = block.bn2(block.conv2(block.first[2](torch.relu(block.first[0](x)))))
        assert torch.allclose(block(x), torch.relu(out * block.se(out) + x), atol=1e-5)
        other = SEBasicBlock(8, 8, relu_first=False).eval()
        assert isinstance(other.first[1], torch.nn.BatchNorm2d) and isinstance(other.first[2], torch.nn.ReLU)


def test_face_encoder_is_a_resnet34_pooled_over_frames():
    torch.manual_seed(0)
    enc = FaceEncoder().eval()
    assert len(enc.trunk[6]) == 6  # layer3 of a ResNet34 has six blocks (ResNet18: two)
    frame = torch.randn(1, 3, 1, 48, 48)
    with torch.no_grad():
        # features up to ~30: a batch of two frames runs other float32 kernels than one, on some CPUs ~4e-5 apart
        assert torch.allclose(enc(frame), enc(frame.repeat(1, 1, 2, 1, 1)), atol=1e-4)


def test_av_classifier_with_the_vox_encoders_keeps_the_mmcosine_formula():
    torch.manual_seed(0)
    model = resnet_classifier(5, "gated", mmcosine=True, scaling=10.0, audio=SpeakerEncoder(),
                              visual=FaceEncoder()).eval()
    with torch.no_grad():
        out = model({"audio": torch.randn(2, 16000), "visual": torch.randn(2, 3, 2, 48, 48)})
        w_a = model.classifier_weights()["audio"]
        expected = (10.0 * torch.nn.functional.normalize(out.feat["audio"], dim=1)
                    @ torch.nn.functional.normalize(w_a, dim=1).T)
    assert torch.allclose(out.unimodal["audio"], expected, atol=1e-5)
