"""Physical channel removal: build smaller layers holding the kept slices of the trained weights."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def slice_conv(conv: nn.Conv2d, out_idx: Tensor, in_idx: Tensor) -> nn.Conv2d:
    """A new convolution keeping output channels ``out_idx`` and input channels ``in_idx``.

    For a depthwise convolution (groups == channels) the two index sets must be equal.
    """
    depthwise = conv.groups == conv.in_channels and conv.groups > 1
    groups = len(out_idx) if depthwise else 1
    if conv.groups not in (1, conv.in_channels):
        raise NotImplementedError("grouped convolutions other than depthwise are not prunable")
    new = nn.Conv2d(
        len(in_idx),
        len(out_idx),
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        groups,
        bias=conv.bias is not None,
        padding_mode=conv.padding_mode,
    ).to(conv.weight.device, conv.weight.dtype)
    with torch.no_grad():
        weight = conv.weight[out_idx]
        new.weight.copy_(weight if depthwise else weight[:, in_idx])
        if conv.bias is not None:
            new.bias.copy_(conv.bias[out_idx])
    return new


def slice_bn(bn: nn.BatchNorm2d, idx: Tensor) -> nn.BatchNorm2d:
    """A new BatchNorm keeping channels ``idx`` (affine parameters and running statistics)."""
    new = nn.BatchNorm2d(len(idx), bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
    new = new.to(bn.running_mean.device if bn.track_running_stats else bn.weight.device).train(bn.training)
    with torch.no_grad():
        if bn.affine:
            new.weight.copy_(bn.weight[idx])
            new.bias.copy_(bn.bias[idx])
        if bn.track_running_stats:
            new.running_mean.copy_(bn.running_mean[idx])
            new.running_var.copy_(bn.running_var[idx])
            new.num_batches_tracked.copy_(bn.num_batches_tracked)
    return new


def slice_linear_inputs(linear: nn.Linear, in_idx: Tensor) -> nn.Linear:
    """A new linear layer reading only the input features ``in_idx``."""
    new = nn.Linear(len(in_idx), linear.out_features, linear.bias is not None).to(linear.weight.device)
    with torch.no_grad():
        new.weight.copy_(linear.weight[:, in_idx])
        if linear.bias is not None:
            new.bias.copy_(linear.bias)
    return new
