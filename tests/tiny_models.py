"""Small user models for the pruning tests, named as ``tiny_models:FACTORY`` (tests/ is on sys.path)."""

from __future__ import annotations

import torch
from torch import nn


def _cbr(cin: int, cout: int, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, groups=groups, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class TinyNet(nn.Module):
    """A residual addition, a depthwise convolution and a concatenation: every coupling Torch-Pruning groups."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.stem = _cbr(in_channels, 16)
        self.res = nn.Sequential(_cbr(16, 16), nn.Conv2d(16, 16, 3, padding=1))
        self.dw = _cbr(16, 16, groups=16)
        self.branch_a, self.branch_b = _cbr(16, 8), _cbr(16, 8)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = torch.relu(x + self.res(x))
        x = self.dw(x)
        x = torch.cat([self.branch_a(x), self.branch_b(x)], 1)
        return self.fc(self.pool(x).flatten(1))


def tiny_net(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """:class:`TinyNet`."""
    return TinyNet(num_classes, in_channels)


class HardCodedSplit(nn.Module):
    """Splits its features at a hard-coded channel count: pruning ``conv`` breaks the forward."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 8, 3, padding=1)
        self.fc = nn.Linear(4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = torch.split(self.conv(x), [4, 4], dim=1)
        return self.fc((a * b).mean((2, 3)))


def hard_coded_split(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """:class:`HardCodedSplit`."""
    return HardCodedSplit(num_classes, in_channels)
