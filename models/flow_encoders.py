"""Encoders for optical flow, (B, 2, T, H, W) u/v stacks -> (B, 512).

- Flow3DEncoder: the MMCosine release's backbone_OF (models/backbone_OF.py, shipped as bytecode only), a 3-D
  ResNet18: Conv3d(2, 64, 7x7x7, stride (1, 2, 2), padding 3, no bias), BN, ReLU, MaxPool3d(3, 2, 1), then
  BasicBlocks of 3x3x3 convolutions (1x1x1 downsample), 64/128/256/512 channels, strides 1/2/2/2, two blocks a
  stage, Kaiming-initialised convolutions. Time is strided with space: 16 steps -> 8 -> 4 -> 2 -> 1. The release
  returns layer4's map; here it is averaged over T', H', W' to the 512-d feature every encoder gives.
- Flow2DEncoder: a 2-D ResNet18 with a 2-channel conv1 (the release's backbone_OF1, BalanceBenchmark's flow
  encoder), the flow pairs folded into the batch and pooled as VisualEncoder's frames.
"""
import torch
from torch import nn

from .encoders import VisualEncoder

FLOW_CHANNELS = 2


def conv3x3x3(in_planes: int, planes: int, stride: int = 1) -> nn.Conv3d:
    return nn.Conv3d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock3d(nn.Module):
    """torchvision's BasicBlock in 3-D, with its attribute names (so ImageNet weights map onto it by name)."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = conv3x3x3(in_planes, planes, stride)
        self.bn1 = nn.BatchNorm3d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3x3(planes, planes)
        self.bn2 = nn.BatchNorm3d(planes)
        self.downsample = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(nn.Conv3d(in_planes, planes, kernel_size=1, stride=stride, bias=False),
                                            nn.BatchNorm3d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


def stage(in_planes: int, planes: int, stride: int) -> nn.Sequential:
    return nn.Sequential(BasicBlock3d(in_planes, planes, stride), BasicBlock3d(planes, planes))


class Flow3DEncoder(nn.Module):
    """(B, 2, T, H, W) -> (B, 512). `backbone` is laid out as the 2-D trunks (conv1, bn1, relu, maxpool,
    layer1-4 at indices 0-7); it is not called `trunk` because mid-level fusion (models/mmtm.py) steps
    through 2-D maps and must refuse it."""

    def __init__(self, in_channels: int = FLOW_CHANNELS):
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv3d(in_channels, 64, kernel_size=7, stride=(1, 2, 2), padding=3, bias=False),
            nn.BatchNorm3d(64), nn.ReLU(inplace=True), nn.MaxPool3d(kernel_size=3, stride=2, padding=1),
            stage(64, 64, 1), stage(64, 128, 2), stage(128, 256, 2), stage(256, 512, 2))
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm3d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, flow: torch.Tensor) -> torch.Tensor:
        return self.backbone(flow).mean(dim=(2, 3, 4))


class Flow2DEncoder(VisualEncoder):
    """(B, 2, T, H, W) -> (B, 512): each u/v pair through a 2-D ResNet18 with a 2-channel conv1, pooled over
    T, H', W' (VisualEncoder's fold / trunk / pool, so mid-level fusion can run the trunk stage by stage)."""

    def __init__(self, arch: str = "resnet18", bn_init: str = "normal"):
        super().__init__(arch, bn_init, in_channels=FLOW_CHANNELS)
