"""A small audio-visual classifier for the methods' unit tests: the project's AVClassifier (fusion, heads,
MMCosine) on two conv-BN-ReLU encoders that give the 512-d features the fusion modules expect. What the
tests check (which gradient reaches which encoder, BatchNorm in eval or train mode) does not depend on
the encoders' depth, and a step takes milliseconds instead of seconds."""
import torch
from torch import nn

from models import AVClassifier


class TinyEncoder(nn.Module):
    """(B, C, H, W), or frames (B, C, T, H, W) with T folded into the batch, -> (B, 512)."""

    def __init__(self, in_channels: int, width: int = 8):
        super().__init__()
        self.trunk = nn.Sequential(nn.Conv2d(in_channels, width, 3, 2, 1), nn.BatchNorm2d(width), nn.ReLU(),
                                   nn.Conv2d(width, 512, 3, 2, 1), nn.BatchNorm2d(512), nn.ReLU())

    def forward(self, x):
        if x.dim() == 5:
            b = x.shape[0]
            maps = self.trunk(x.transpose(1, 2).reshape(-1, x.shape[1], *x.shape[3:]))
            return maps.reshape(b, -1, *maps.shape[1:]).mean(dim=(1, 3, 4))
        return self.trunk(x).mean(dim=(2, 3))


def tiny_classifier(n_classes: int = 3, fusion: str = "concat", mmcosine: bool = False, seed: int = 0) -> AVClassifier:
    torch.manual_seed(seed)
    return AVClassifier(n_classes, fusion, mmcosine=mmcosine, audio_encoder=TinyEncoder(1),
                        visual_encoder=TinyEncoder(3))


def method_args(method: str, *flags: str):
    """main_CD.py's flags for `method` (every default as a user gets it), with `flags` typed."""
    import main_CD
    return main_CD.build_parser().parse_args(["--method", method, *flags])


def tiny_batch(n: int = 6, seed: int = 3):
    """(audio (n, 1, 32, 24), frames (n, 3, 2, 16, 16), labels cycling over 3 classes)."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, 1, 32, 24, generator=g), torch.randn(n, 3, 2, 16, 16, generator=g),
            torch.arange(n) % 3)
