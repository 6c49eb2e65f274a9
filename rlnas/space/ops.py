"""The operator registry: every searchable layer is built from one of these.

Each operator maps ``(c_in, c_out, stride)`` to a module that turns ``c_in`` channels into ``c_out``
channels at ``1/stride`` the resolution. Where an operator cannot keep the shape by itself (``skip`` or
a pooling layer at the first layer of a stage, which changes width or stride), it is implemented with
the smallest correct projection: a 1x1 convolution with that stride, followed by BatchNorm.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn


class ConvBN(nn.Module):
    """Convolution, BatchNorm and an optional activation; its output channels are prunable."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, act: str | None = "relu"
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.act = {"relu": nn.ReLU(inplace=True), "relu6": nn.ReLU6(inplace=True), None: nn.Identity()}[act]

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))


class SepConv(nn.Module):
    """Depthwise-separable convolution (MobileNetV1): depthwise kxk, then pointwise 1x1."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.depthwise = ConvBN(c_in, c_in, kernel, stride, groups=c_in)
        self.pointwise = ConvBN(c_in, c_out, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise(self.depthwise(x))


class MBConv(nn.Module):
    """Inverted residual block (MobileNetV2): expand 1x1, depthwise kxk, project 1x1, residual if shapes allow.

    Its prunable channels are the expanded (hidden) ones.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, expansion: int, stride: int) -> None:
        super().__init__()
        hidden = c_in * expansion
        self.expand = ConvBN(c_in, hidden, 1, act="relu6")
        self.depthwise = ConvBN(hidden, hidden, kernel, stride, groups=hidden, act="relu6")
        self.project = ConvBN(hidden, c_out, 1, act=None)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: Tensor) -> Tensor:
        out = self.project(self.depthwise(self.expand(x)))
        return x + out if self.residual else out


class Pool(nn.Module):
    """3x3 max or average pooling; a 1x1 projection follows where width or stride must change."""

    def __init__(self, c_in: int, c_out: int, stride: int, kind: str) -> None:
        super().__init__()
        pool_cls = nn.MaxPool2d if kind == "max" else nn.AvgPool2d
        self.pool = pool_cls(3, stride, 1)
        self.projection = ConvBN(c_in, c_out, 1, act=None) if c_in != c_out else None

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(x)
        return self.projection(x) if self.projection is not None else x


class Projection(ConvBN):
    """The 1x1 convolution (no activation) that stands in for ``skip`` where width or stride changes."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__(c_in, c_out, 1, stride, act=None)


def _skip(c_in: int, c_out: int, stride: int) -> nn.Module:
    return nn.Identity() if c_in == c_out and stride == 1 else Projection(c_in, c_out, stride)


OperatorBuilder = Callable[[int, int, int], nn.Module]

OPERATORS: dict[str, OperatorBuilder] = {
    "conv3x3": lambda ci, co, s: ConvBN(ci, co, 3, s),
    "conv5x5": lambda ci, co, s: ConvBN(ci, co, 5, s),
    "sep3x3": lambda ci, co, s: SepConv(ci, co, 3, s),
    "sep5x5": lambda ci, co, s: SepConv(ci, co, 5, s),
    "mbconv3_k3": lambda ci, co, s: MBConv(ci, co, 3, 3, s),
    "mbconv3_k5": lambda ci, co, s: MBConv(ci, co, 5, 3, s),
    "mbconv6_k3": lambda ci, co, s: MBConv(ci, co, 3, 6, s),
    "mbconv6_k5": lambda ci, co, s: MBConv(ci, co, 5, 6, s),
    "maxpool3x3": lambda ci, co, s: Pool(ci, co, s, "max"),
    "avgpool3x3": lambda ci, co, s: Pool(ci, co, s, "avg"),
    "skip": _skip,
}
"""Operator name -> builder ``(c_in, c_out, stride) -> nn.Module``; each module type has a rule in
:mod:`rlnas.space.rules` (how it prunes, masks and is timed)."""
