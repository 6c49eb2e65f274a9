"""Prune a trained :class:`~rlnas.space.model.ChildNet` to per-layer keep-ratios, removing channels for real.

What a keep-ratio prunes is each operator's rule (:mod:`rlnas.space.rules`): the output channels of a
convolution or projection, the pointwise outputs of a separable convolution, the hidden channels of an MBConv;
pass-through layers keep their input's channels. This module supplies the cutting: channels are ranked by the
L1 norm of their trained filters and the lowest are removed; every layer that reads a removed channel (the next
layer, a residual branch, the classifier) shrinks to match.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rlnas.pruning.importance import l1_importance, top_channels
from rlnas.pruning.surgery import slice_bn, slice_conv, slice_linear_inputs
from rlnas.space.model import ChildNet
from rlnas.space.ops import ConvBN
from rlnas.space.rules import rule_for
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
    for layer, keep in zip(model.layers, keeps, strict=True):
        idx = prune_layer(layer, idx, keep)
    model.classifier = slice_linear_inputs(model.classifier, idx)
    model.pruned_keeps = tuple(float(k) for k in keeps)
    return model


def prune_layer(layer: nn.Module, in_idx: Tensor, keep: float) -> Tensor:
    """Prune an operator module (in place) reading input channels ``in_idx``; the indices of its surviving outputs."""
    return rule_for(layer).prune(layer, in_idx, keep, L1_SURGERY)


class L1Surgery:
    """:class:`rlnas.space.rules.ChannelSurgery` by L1 importance and physical slicing."""

    def keep_top(self, block: ConvBN, in_idx: Tensor, keep: float) -> Tensor:
        """Keep the top-L1 output channels, reading the surviving inputs ``in_idx`` (original numbering)."""
        out_idx = top_channels(l1_importance(block.conv), kept_channels(block.conv.out_channels, keep))
        self.restrict(block, out_idx, in_idx)
        return out_idx

    def restrict(self, block: ConvBN, out_idx: Tensor, in_idx: Tensor) -> None:
        block.conv = slice_conv(block.conv, out_idx, in_idx)
        block.bn = slice_bn(block.bn, out_idx)


L1_SURGERY = L1Surgery()
