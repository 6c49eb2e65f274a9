"""One rule object per operator module type: what a keep-ratio prunes, the masked supernet forward, the layer shape.

Pruning (:mod:`rlnas.pruning.prune`), the weight-sharing supernet (:mod:`rlnas.training.supernet`) and the latency
table (:mod:`rlnas.latency.layers`) all loop over this registry, so a new operator needs its module (registered
in :data:`rlnas.space.ops.OPERATORS`) and one rule here (:func:`register_rule`), nothing else. A rule states,
for its module type:

- :meth:`OperatorRule.prunable`: the block whose output channels a keep-ratio selects (None: nothing of its own);
- :meth:`OperatorRule.prune`: which channels survive a keep-ratio given the input's surviving channels, carried
  out through a :class:`ChannelSurgery` (which ranks and slices; supplied by :mod:`rlnas.pruning`);
- :meth:`OperatorRule.masked_forward`: the same selection as channel masks on the full-width module, so a
  supernet path computes on its kept channels what the pruned child computes;
- :meth:`OperatorRule.shape`: the widths a (pruned) module reads and produces, which a latency table times.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor, nn

from rlnas.space.ops import ConvBN, MBConv, Pool, Projection, SepConv


class ChannelSurgery(Protocol):
    """How the blocks a rule names are cut: :mod:`rlnas.pruning` ranks channels (L1) and slices the weights."""

    def keep_top(self, block: ConvBN, in_idx: Tensor, keep: float) -> Tensor:
        """Keep the most important ``keep`` share of ``block``'s outputs, reading inputs ``in_idx``; the kept
        output indices (original numbering, ascending)."""
        ...

    def restrict(self, block: ConvBN, out_idx: Tensor, in_idx: Tensor) -> None:
        """Slice ``block`` to outputs ``out_idx`` reading inputs ``in_idx`` (both decided elsewhere)."""
        ...


MaskFor = Callable[[ConvBN], Tensor | None]
"""The supernet's output-channel mask of a prunable block at the path's keep-ratio (None: all channels kept)."""


@dataclass(frozen=True)
class LayerShape:
    """Channels a (pruned) operator module reads and produces; ``hidden``: an expanded width (MBConv);
    ``variant`` tells apart modules of one operator that run differently (``residual``, ``projection``,
    ``identity`` or ``""``)."""

    c_in: int
    c_out: int
    hidden: int | None = None
    variant: str = ""


def masked(x: Tensor, mask: Tensor | None) -> Tensor:
    """``x`` with the channels outside ``mask`` zeroed (unchanged when there is no mask)."""
    return x if mask is None else x * mask


class OperatorRule(Protocol):
    """The pruning, masking and latency-table rule of one operator module type (see the module docstring)."""

    def prunable(self, module: nn.Module) -> ConvBN | None:
        """The block whose output channels a keep-ratio selects, or None."""
        ...

    def prune(self, module: nn.Module, in_idx: Tensor, keep: float, surgery: ChannelSurgery) -> Tensor:
        """Prune ``module`` in place, reading the surviving inputs ``in_idx``; its surviving output indices."""
        ...

    def masked_forward(
        self, module: nn.Module, x: Tensor, in_mask: Tensor | None, mask_for: MaskFor
    ) -> tuple[Tensor, Tensor | None]:
        """The full-width module on ``x`` (pruned input channels zero, ``in_mask``): its output with the pruned
        channels zero, and the output's mask."""
        ...

    def shape(self, module: nn.Module, c_in: int) -> LayerShape:
        """The widths ``module`` reads and produces when its input has ``c_in`` channels."""
        ...


class ConvRule:
    """``conv*``: a keep-ratio prunes the output channels."""

    variant = ""

    def prunable(self, module: ConvBN) -> ConvBN:
        return module

    def prune(self, module: ConvBN, in_idx: Tensor, keep: float, surgery: ChannelSurgery) -> Tensor:
        return surgery.keep_top(module, in_idx, keep)

    def masked_forward(
        self, module: ConvBN, x: Tensor, in_mask: Tensor | None, mask_for: MaskFor
    ) -> tuple[Tensor, Tensor | None]:
        out_mask = mask_for(module)
        return masked(module(x), out_mask), out_mask

    def shape(self, module: ConvBN, c_in: int) -> LayerShape:
        return LayerShape(module.conv.in_channels, module.conv.out_channels, variant=self.variant)


class ProjectionRule(ConvRule):
    """``skip`` where width or stride changes: a 1x1 projection, pruned like a convolution."""

    variant = "projection"


class SepConvRule:
    """``sep*``: the pointwise convolution's outputs; the depthwise one follows its input."""

    def prunable(self, module: SepConv) -> ConvBN:
        return module.pointwise

    def prune(self, module: SepConv, in_idx: Tensor, keep: float, surgery: ChannelSurgery) -> Tensor:
        surgery.restrict(module.depthwise, in_idx, in_idx)
        return surgery.keep_top(module.pointwise, in_idx, keep)

    def masked_forward(
        self, module: SepConv, x: Tensor, in_mask: Tensor | None, mask_for: MaskFor
    ) -> tuple[Tensor, Tensor | None]:
        out_mask = mask_for(module.pointwise)
        return masked(module.pointwise(masked(module.depthwise(x), in_mask)), out_mask), out_mask

    def shape(self, module: SepConv, c_in: int) -> LayerShape:
        return LayerShape(module.depthwise.conv.in_channels, module.pointwise.conv.out_channels)


class MBConvRule:
    """``mbconv*``: the expanded (hidden) channels. The output follows the input where there is a residual
    connection and keeps its full width otherwise."""

    def prunable(self, module: MBConv) -> ConvBN:
        return module.expand

    def prune(self, module: MBConv, in_idx: Tensor, keep: float, surgery: ChannelSurgery) -> Tensor:
        hidden = surgery.keep_top(module.expand, in_idx, keep)
        surgery.restrict(module.depthwise, hidden, hidden)
        out_channels = module.project.conv.out_channels
        out_idx = in_idx if module.residual else torch.arange(out_channels, device=in_idx.device)
        surgery.restrict(module.project, out_idx, hidden)
        return out_idx

    def masked_forward(
        self, module: MBConv, x: Tensor, in_mask: Tensor | None, mask_for: MaskFor
    ) -> tuple[Tensor, Tensor | None]:
        hidden = mask_for(module.expand)
        out = module.project(masked(module.depthwise(masked(module.expand(x), hidden)), hidden))
        return (x + masked(out, in_mask), in_mask) if module.residual else (out, None)

    def shape(self, module: MBConv, c_in: int) -> LayerShape:
        expand = module.expand.conv
        variant = "residual" if module.residual else ""
        return LayerShape(expand.in_channels, module.project.conv.out_channels, expand.out_channels, variant)


class PoolRule:
    """Pooling: the projection's outputs where width or stride changes; otherwise the input passes through."""

    def prunable(self, module: Pool) -> ConvBN | None:
        return module.projection

    def prune(self, module: Pool, in_idx: Tensor, keep: float, surgery: ChannelSurgery) -> Tensor:
        return in_idx if module.projection is None else surgery.keep_top(module.projection, in_idx, keep)

    def masked_forward(
        self, module: Pool, x: Tensor, in_mask: Tensor | None, mask_for: MaskFor
    ) -> tuple[Tensor, Tensor | None]:
        x = module.pool(x)
        if module.projection is None:
            return x, in_mask
        out_mask = mask_for(module.projection)
        return masked(module.projection(x), out_mask), out_mask

    def shape(self, module: Pool, c_in: int) -> LayerShape:
        if module.projection is None:
            return LayerShape(c_in, c_in)
        conv = module.projection.conv
        return LayerShape(conv.in_channels, conv.out_channels, variant="projection")


class IdentityRule:
    """``skip`` where shape is kept: nothing of its own; the input's channels pass through."""

    def prunable(self, module: nn.Identity) -> None:
        return None

    def prune(self, module: nn.Identity, in_idx: Tensor, keep: float, surgery: ChannelSurgery) -> Tensor:
        return in_idx

    def masked_forward(
        self, module: nn.Identity, x: Tensor, in_mask: Tensor | None, mask_for: MaskFor
    ) -> tuple[Tensor, Tensor | None]:
        return x, in_mask

    def shape(self, module: nn.Identity, c_in: int) -> LayerShape:
        return LayerShape(c_in, c_in, variant="identity")


RULES: dict[type[nn.Module], OperatorRule] = {
    ConvBN: ConvRule(),
    Projection: ProjectionRule(),
    SepConv: SepConvRule(),
    MBConv: MBConvRule(),
    Pool: PoolRule(),
    nn.Identity: IdentityRule(),
}
"""Operator module type -> its rule; a subclass without a rule of its own uses its base class's."""


def register_rule(module_type: type[nn.Module], rule: OperatorRule) -> None:
    """Give the modules of ``module_type`` (an operator's builder output) their rule."""
    RULES[module_type] = rule


def rule_for(module: nn.Module) -> OperatorRule:
    """The rule of ``module``'s type (or of its nearest registered base class)."""
    for cls in type(module).__mro__:
        if cls in RULES:
            return RULES[cls]
    raise TypeError(f"no operator rule for {type(module).__name__}: register one with rlnas.space.rules.register_rule")
