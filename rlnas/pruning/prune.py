"""Prune a trained :class:`~rlnas.space.model.ChildNet` to per-layer keep-ratios, removing channels for real.

What a keep-ratio prunes, per operator:

- ``conv*``, and the projection of ``skip``/pooling where width or stride changes: the output channels.
- ``sep*``: the output channels of the pointwise convolution (the depthwise one follows its input).
- ``mbconv*``: the expanded (hidden) channels. The block's output follows its input where it has a
  residual connection, and keeps its full width otherwise.
- ``skip`` as identity and pooling without projection: nothing of their own; they pass their input's
  channels through, so the keep-ratio has no effect there.

Channels are ranked by the L1 norm of their trained filters and the lowest are removed; every layer that
reads a removed channel (the next layer, a residual branch, the classifier) shrinks to match.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rlnas.pruning.importance import l1_importance, top_channels
from rlnas.pruning.surgery import slice_bn, slice_conv, slice_linear_inputs
from rlnas.space.model import ChildNet
from rlnas.space.ops import ConvBN, MBConv, Pool, SepConv
from rlnas.space.space import Arch


def kept_channels(channels: int, keep: float) -> int:
    """How many of ``channels`` a keep-ratio keeps (at least one)."""
    return max(1, round(channels * keep))


def prune_child(model: ChildNet, keeps: Arch | tuple[float, ...] | None = None) -> ChildNet:
    """Prune ``model`` in place to ``keeps`` (default: the keep-ratios of its own architecture); returns it.

    The keep-ratios are recorded in ``model.pruned_keeps`` (and its :meth:`~ChildNet.arch_json`); a model is
    pruned once: ratios apply to the full widths.
    """
    if model.pruned_keeps is not None:
        raise ValueError(f"this child is already pruned (to keep-ratios {list(model.pruned_keeps)}); prune a full one")
    if keeps is None:
        keeps = Arch.parse(model.arch).keeps
    elif isinstance(keeps, Arch):
        keeps = keeps.keeps
    if len(keeps) != len(model.layers):
        raise ValueError(f"{len(keeps)} keep-ratios given for {len(model.layers)} layers")
    idx = torch.arange(model.stem.conv.out_channels, device=model.stem.conv.weight.device)
    for i, (layer, keep) in enumerate(zip(model.layers, keeps, strict=True)):
        idx = prune_layer(i, layer, idx, keep)
    model.classifier = slice_linear_inputs(model.classifier, idx)
    model.pruned_keeps = tuple(float(k) for k in keeps)
    return model


def prune_layer(i: int, layer: nn.Module, in_idx: Tensor, keep: float) -> Tensor:
    """Prune layer ``i`` (in place) reading input channels ``in_idx``; return the indices of its surviving outputs."""
    if isinstance(layer, ConvBN):
        return _prune_convbn(layer, in_idx, keep)
    if isinstance(layer, SepConv):
        _restrict_depthwise(layer.depthwise, in_idx)
        return _prune_convbn(layer.pointwise, in_idx, keep)
    if isinstance(layer, MBConv):
        return _prune_mbconv(layer, in_idx, keep)
    if isinstance(layer, Pool):
        return in_idx if layer.projection is None else _prune_convbn(layer.projection, in_idx, keep)
    if isinstance(layer, nn.Identity):
        return in_idx
    raise TypeError(f"layer {i}: no pruning rule for {type(layer).__name__}")


def _prune_convbn(block: ConvBN, in_idx: Tensor, keep: float) -> Tensor:
    """Keep the top-L1 output channels, reading the surviving inputs ``in_idx`` (original numbering)."""
    out_idx = top_channels(l1_importance(block.conv), kept_channels(block.conv.out_channels, keep))
    block.conv = slice_conv(block.conv, out_idx, in_idx)
    block.bn = slice_bn(block.bn, out_idx)
    return out_idx


def _restrict_depthwise(block: ConvBN, idx: Tensor) -> None:
    block.conv = slice_conv(block.conv, idx, idx)
    block.bn = slice_bn(block.bn, idx)


def _prune_mbconv(layer: MBConv, in_idx: Tensor, keep: float) -> Tensor:
    hidden = _prune_convbn(layer.expand, in_idx, keep)
    _restrict_depthwise(layer.depthwise, hidden)
    out_idx = in_idx if layer.residual else torch.arange(layer.project.conv.out_channels, device=in_idx.device)
    layer.project.conv = slice_conv(layer.project.conv, out_idx, hidden)
    layer.project.bn = slice_bn(layer.project.bn, out_idx)
    return out_idx
