"""Encoders of the paper's VoxCeleb setting: a ResNetSE34V2-style speaker encoder on raw
waveforms (pre-emphasis, log-mel spectrogram, instance norm, a half-width ResNet34 with
squeeze-and-excitation blocks, attentive pooling; the release's settings by default) and a
ResNet34 face encoder.
Both give 512-d features, so the fusion modules and the MMCosine head are unchanged."""
import torch
import torch.nn.functional as F
import torchaudio
from torch import nn

from .encoders import FEATURE_DIM, VisualEncoder


class PreEmphasis(nn.Module):
    """y[t] = x[t] - coef * x[t-1] (the first sample reflects its neighbour, as is customary)."""

    def __init__(self, coef: float = 0.97):
        super().__init__()
        self.coef = coef

    def forward(self, wave: torch.Tensor) -> torch.Tensor:  # (B, N)
        padded = F.pad(wave.unsqueeze(1), (1, 0), mode="reflect").squeeze(1)
        return padded[:, 1:] - self.coef * padded[:, :-1]


def conv_norm(conv: nn.Conv2d, channels: int, relu_first: bool) -> nn.Sequential:
    """conv -> ReLU -> BN (the release's order) or conv -> BN -> ReLU."""
    norm = nn.BatchNorm2d(channels)
    return nn.Sequential(conv, nn.ReLU(inplace=True), norm) if relu_first else nn.Sequential(conv, norm, nn.ReLU(inplace=True))


class SEBasicBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, reduction: int = 8, relu_first: bool = True):
        super().__init__()
        self.first = conv_norm(nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False), out_ch, relu_first)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(out_ch, out_ch // reduction, 1), nn.ReLU(inplace=True),
                                nn.Conv2d(out_ch // reduction, out_ch, 1), nn.Sigmoid())
        self.shortcut = nn.Identity() if stride == 1 and in_ch == out_ch else nn.Sequential(
            nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))

    def forward(self, x):
        out = self.bn2(self.conv2(self.first(x)))
        return F.relu(out * self.se(out) + self.shortcut(x))


class AttentivePool(nn.Module):
    """Per-frame attention weights (per channel), then the weighted mean (SAP: self-attentive pooling)
    or the weighted mean and standard deviation (ASP: attentive statistics pooling)."""

    def __init__(self, channels: int, hidden: int = 128, with_std: bool = True):
        super().__init__()
        self.with_std = with_std
        self.attention = nn.Sequential(nn.Conv1d(channels, hidden, 1), nn.ReLU(inplace=True), nn.BatchNorm1d(hidden),
                                       nn.Conv1d(hidden, channels, 1), nn.Softmax(dim=2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T) -> (B, C) or (B, 2C)
        w = self.attention(x)
        mean = (x * w).sum(dim=2)
        if not self.with_std:
            return mean
        std = torch.sqrt(((x * x) * w).sum(dim=2).sub(mean * mean).clamp(min=1e-5))
        return torch.cat([mean, std], dim=1)


POOLINGS = ("sap", "asp")
BLOCK_ORDERS = ("conv_relu_bn", "conv_bn_relu")


class SpeakerEncoder(nn.Module):
    """(B, N) 16 kHz waveform -> (B, 512). Defaults are the release's models/vox/ResNetSE34V2_audio.py:
    40 mel bands, self-attentive pooling (SAP), conv -> ReLU -> BN in the stem and in each block's first
    convolution. `n_mels=64, pooling="asp", block_order="conv_bn_relu"` is the common ResNetSE34V2 variant."""

    def __init__(self, n_mels: int = 40, pooling: str = "sap", block_order: str = "conv_relu_bn",
                 layers=(3, 4, 6, 3), filters=(32, 64, 128, 256)):
        super().__init__()
        if pooling not in POOLINGS or block_order not in BLOCK_ORDERS:
            raise ValueError(f"pooling must be one of {POOLINGS}, block_order one of {BLOCK_ORDERS}")
        relu_first = block_order == "conv_relu_bn"
        self.pre_emphasis = PreEmphasis()
        self.mel = torchaudio.transforms.MelSpectrogram(sample_rate=16000, n_fft=512, win_length=400, hop_length=160,
                                                        window_fn=torch.hamming_window, n_mels=n_mels)
        self.instance_norm = nn.InstanceNorm1d(n_mels)
        # The release's stem convolution has a bias (it is followed by ReLU, not directly by BN).
        self.stem = conv_norm(nn.Conv2d(1, filters[0], 3, 1, 1, bias=relu_first), filters[0], relu_first)
        blocks, in_ch = [], filters[0]
        for i, (n, out_ch) in enumerate(zip(layers, filters)):
            for j in range(n):
                blocks.append(SEBasicBlock(in_ch, out_ch, stride=(1 if i == 0 else 2) if j == 0 else 1,
                                           relu_first=relu_first))
                in_ch = out_ch
        self.blocks = nn.Sequential(*blocks)
        channels = filters[-1] * (n_mels // 8)
        self.pool = AttentivePool(channels, with_std=pooling == "asp")
        self.fc = nn.Linear((2 if pooling == "asp" else 1) * channels, FEATURE_DIM)
        for module in self.modules():  # the release's initialisation (BatchNorm keeps weight 1, bias 0)
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def features(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, N) -> normalised log-mel (B, 1, n_mels, frames); kept in float32 under autocast."""
        with torch.autocast(device_type=wave.device.type, enabled=False):
            mel = self.mel(self.pre_emphasis(wave.float())) + 1e-6
            return self.instance_norm(mel.log()).unsqueeze(1)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        maps = self.blocks(self.stem(self.features(wave)))         # (B, C, n_mels/8, frames/8)
        return self.fc(self.pool(maps.flatten(1, 2)))


class FaceEncoder(VisualEncoder):
    """ResNet34 on face crops: (B, 3, T, H, W) -> (B, 512), T folded into the batch and pooled."""

    def __init__(self, bn_init: str = "normal"):
        super().__init__(arch="resnet34", bn_init=bn_init)
