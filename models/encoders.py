"""ResNet18 encoders for spectrograms (1 channel) and video frames (3 channels).

torchvision's ResNet18 is the backbone; only the stem's input channels and the
pooling differ between modalities. Both return one 512-d vector per sample.
"""
import torch
from torch import nn
from torchvision.models import resnet18, resnet34

FEATURE_DIM = 512


ARCHS = {"resnet18": resnet18, "resnet34": resnet34}


BN_INITS = ("normal", "constant")


def _resnet_trunk(in_channels: int, arch: str = "resnet18", bn_init: str = "normal") -> nn.Sequential:
    """A torchvision ResNet without its global pool and fc, so each modality pools its own way.
    bn_init "normal": BatchNorm weights drawn from N(1, 0.02), as the release's backbones
    (models/backbone_audio.py, backbone_visual.py); "constant": torchvision's 1."""
    if bn_init not in BN_INITS:
        raise ValueError(f"bn_init must be one of {BN_INITS}")
    net = ARCHS[arch](weights=None)
    if in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
    if bn_init == "normal":
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                nn.init.normal_(module.weight, mean=1.0, std=0.02)
    return nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool,
                         net.layer1, net.layer2, net.layer3, net.layer4)


class AudioEncoder(nn.Module):
    """(B, 1, F, T) log-spectrogram -> (B, 512). fold / trunk / pool are separate so mid-level
    fusion (models/mmtm.py) can run the trunk stage by stage."""

    def __init__(self, bn_init: str = "normal"):
        super().__init__()
        self.trunk = _resnet_trunk(in_channels=1, bn_init=bn_init)

    def fold(self, spec: torch.Tensor) -> torch.Tensor:
        return spec

    def pool(self, maps: torch.Tensor, batch: int) -> torch.Tensor:
        return maps.mean(dim=(2, 3))

    def channel_means(self, maps: torch.Tensor, batch: int) -> torch.Tensor:
        """(B, C) float32 channel means of stage maps (MMTM's squeeze)."""
        return maps.float().mean(dim=(2, 3))

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        return self.pool(self.trunk(self.fold(spec)), spec.shape[0])


class VisualEncoder(nn.Module):
    """(B, C, T, H, W) frames (C = 3, or 2 for u/v flow) -> (B, 512): T folded into the batch, then pooled over
    T, H', W'."""

    def __init__(self, arch: str = "resnet18", bn_init: str = "normal", in_channels: int = 3):
        super().__init__()
        self.trunk = _resnet_trunk(in_channels=in_channels, arch=arch, bn_init=bn_init)

    def fold(self, frames: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = frames.shape
        return frames.transpose(1, 2).reshape(b * t, c, h, w)

    def pool(self, maps: torch.Tensor, batch: int) -> torch.Tensor:
        """(B*T, C, h', w') -> (B, C)."""
        return maps.reshape(batch, -1, *maps.shape[1:]).mean(dim=(1, 3, 4))

    def channel_means(self, maps: torch.Tensor, batch: int) -> torch.Tensor:
        """(B, C) float32 channel means of stage maps over the clip's frames and positions (MMTM's squeeze)."""
        return maps.float().reshape(batch, -1, maps.shape[1], maps.shape[2] * maps.shape[3]).mean(dim=(1, 3))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.pool(self.trunk(self.fold(frames)), frames.shape[0])


def audio_visual_encoders(args) -> dict:
    """The ResNet18 pair of the audio-visual clip datasets (CREMA-D, SSW60, Kinetics-Sounds, AVE, VGGSound)."""
    return {"audio": AudioEncoder(bn_init=args.bn_init), "visual": VisualEncoder(bn_init=args.bn_init)}
