"""What a latency table times: every distinct pruned layer a search space can produce.

:func:`enumerate_layers` walks the space slot by slot. For every searchable position, operator, keep-ratio and
every input width the previous (pruned) layers can produce, it builds that single operator at full width
(:data:`rlnas.space.ops.OPERATORS`) and prunes it with the very rule :func:`rlnas.pruning.prune_child` applies
(:mod:`rlnas.space.rules`), reading the surviving input channels. The pruned module's widths (its rule's
:meth:`~rlnas.space.rules.OperatorRule.shape`) and, from a dummy forward pass, its output resolution give the
:class:`LayerConfig` and the width the next layer sees; nothing about pruning is restated here. The fixed parts
are entries too: the stem (never pruned) and the head (global pooling + classifier) for every width the last
layer can produce.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from rlnas.pruning.prune import prune_layer
from rlnas.space.model import ChildNet
from rlnas.space.ops import OPERATORS, ConvBN
from rlnas.space.rules import rule_for
from rlnas.space.space import Arch, SearchSpace

STEM, HEAD = "stem", "head"
"""Pseudo-operators of the fixed parts: the stem (position -1) and the pool + classifier (position num_layers)."""


@dataclass(frozen=True, order=True)
class LayerConfig:
    """One distinct pruned layer as it runs inside a child.

    ``position``: the slot index (-1 for the stem, ``num_layers`` for the head). ``c_in``/``c_out``: channels
    actually read and produced after pruning (for the head: pooled features in, classes out). ``hidden``: the
    expanded width of an MBConv after pruning (None elsewhere). ``resolution``: input height and width.
    ``variant``: ``"residual"`` (MBConv with its skip connection), ``"projection"`` (skip/pooling with a 1x1
    projection), ``"identity"`` (skip without one) or ``""``.
    """

    position: int
    op: str
    c_in: int
    c_out: int
    hidden: int | None
    resolution: tuple[int, int]
    stride: int
    variant: str = ""

    def to_json(self) -> dict:
        d = asdict(self)
        d["resolution"] = list(self.resolution)
        return d

    @classmethod
    def from_json(cls, d: dict) -> LayerConfig:
        return cls(
            position=int(d["position"]),
            op=str(d["op"]),
            c_in=int(d["c_in"]),
            c_out=int(d["c_out"]),
            hidden=None if d.get("hidden") is None else int(d["hidden"]),
            resolution=(int(d["resolution"][0]), int(d["resolution"][1])),
            stride=int(d["stride"]),
            variant=str(d.get("variant", "")),
        )

    def __str__(self) -> str:
        hidden = f" hidden {self.hidden}" if self.hidden is not None else ""
        variant = f" ({self.variant})" if self.variant else ""
        h, w = self.resolution
        return f"#{self.position} {self.op}{variant} {self.c_in}->{self.c_out}{hidden} @{h}x{w} s{self.stride}"


def describe_layer(
    position: int, op: str, layer: nn.Module, c_in: int, resolution: tuple[int, int], stride: int
) -> LayerConfig:
    """The :class:`LayerConfig` of a (pruned) operator module reading ``c_in`` channels, from its actual widths."""
    shape = rule_for(layer).shape(layer, c_in)
    return LayerConfig(position, op, shape.c_in, shape.c_out, shape.hidden, tuple(resolution), stride, shape.variant)


@dataclass
class LayerEnumeration:
    """Every distinct pruned layer a space can produce, and how a child's choices map onto them.

    ``transitions[(position, op, keep, c_in)] = (config, c_out)``; ``head[c_in]`` is the head config for a last
    layer of width ``c_in``; ``recipes[config] = (op, keep, c_in)`` rebuilds the module (:meth:`build_module`).
    """

    space: SearchSpace
    stem: LayerConfig
    transitions: dict[tuple[int, str, float, int], tuple[LayerConfig, int]]
    head: dict[int, LayerConfig]
    recipes: dict[LayerConfig, tuple[str, float, int]] = field(repr=False)

    @property
    def configs(self) -> list[LayerConfig]:
        """All distinct configurations: stem, searchable layers (by position), heads."""
        layers = sorted({c for c, _ in self.transitions.values()})
        return [self.stem, *layers, *sorted(self.head.values())]

    def arch_configs(self, arch: Arch | str) -> list[LayerConfig]:
        """The configurations a pruned child of ``arch`` runs: stem, one per layer, head."""
        arch = self.space.parse(arch) if isinstance(arch, str) else arch
        width, out = self.space.config.stem_width, [self.stem]
        for i, (op, keep) in enumerate(zip(arch.ops, arch.keeps, strict=True)):
            config, width = self.transitions[(i, op, keep, width)]
            out.append(config)
        out.append(self.head[width])
        return out

    def build_module(self, config: LayerConfig) -> nn.Module:
        """A module running ``config`` (eval mode, random weights): the stem, the head, or a pruned operator."""
        space = self.space
        if config.op == STEM:
            return ConvBN(space.input_shape[0], space.config.stem_width, 3, space.config.stem_stride).eval()
        if config.op == HEAD:
            return _Head(config.c_in, space.num_classes).eval()
        op, keep, c_in = self.recipes[config]
        return _pruned_operator(space, config.position, op, keep, c_in)


class _Head(nn.Module):
    """The end of :class:`~rlnas.space.model.ChildNet`: global average pooling, flatten, linear classifier."""

    def __init__(self, c_in: int, classes: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_in, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(x), 1))


def _pruned_operator(space: SearchSpace, position: int, op: str, keep: float, c_in: int) -> nn.Module:
    """Slot ``position``'s operator built at full width, pruned by prune.py's own rule to read ``c_in`` inputs."""
    slot = space.slots[position]
    layer = OPERATORS[op](slot.c_in, slot.c_out, slot.stride)
    prune_layer(layer, torch.arange(c_in), keep)
    return layer.eval()


@torch.inference_mode()
def _out_resolution(module: nn.Module, c_in: int, resolution: tuple[int, int]) -> tuple[int, int]:
    return tuple(module.eval()(torch.zeros(1, c_in, *resolution)).shape[-2:])


def enumerate_layers(space: SearchSpace) -> LayerEnumeration:
    """List every distinct pruned layer configuration ``space`` can produce (see the module docstring)."""
    stem_module = ConvBN(space.input_shape[0], space.config.stem_width, 3, space.config.stem_stride)
    in_res = tuple(space.input_shape[1:])
    stem = LayerConfig(-1, STEM, space.input_shape[0], space.config.stem_width, None, in_res, space.config.stem_stride)
    resolution = _out_resolution(stem_module, space.input_shape[0], in_res)
    widths = {space.config.stem_width}  # the stem is never pruned
    transitions, recipes = {}, {}
    for slot in space.slots:
        next_widths, next_res = set(), None
        for c_in in sorted(widths):
            for op in space.operators:
                for keep in space.keep_ratios:
                    module = _pruned_operator(space, slot.index, op, keep, c_in)
                    config = describe_layer(slot.index, op, module, c_in, resolution, slot.stride)
                    res = _out_resolution(module, c_in, resolution)
                    if next_res is not None and res != next_res:
                        raise AssertionError(f"slot {slot.index}: operators disagree on the output resolution")
                    next_res = res
                    transitions[(slot.index, op, keep, c_in)] = (config, config.c_out)
                    recipes.setdefault(config, (op, keep, c_in))
                    next_widths.add(config.c_out)
        widths, resolution = next_widths, next_res
    head = {w: LayerConfig(space.num_layers, HEAD, w, space.num_classes, None, resolution, 1) for w in sorted(widths)}
    return LayerEnumeration(space, stem, transitions, head, recipes)


def list_layer_configs(space: SearchSpace) -> list[LayerConfig]:
    """Every distinct pruned layer configuration of ``space`` (stem, searchable layers, heads)."""
    return enumerate_layers(space).configs


@torch.inference_mode()
def child_layer_configs(model: ChildNet, space: SearchSpace) -> list[LayerConfig]:
    """The configurations a real (pruned or not) child runs, read from its modules and a forward pass."""
    shapes: list[tuple[int, ...]] = []
    hooks = [layer.register_forward_pre_hook(lambda _m, a: shapes.append(tuple(a[0].shape))) for layer in model.layers]
    try:
        model.eval()(torch.zeros(1, *space.input_shape, device=next(model.parameters()).device))
    finally:
        for h in hooks:
            h.remove()
    arch = Arch.parse(model.arch)
    c = space.config
    out = [LayerConfig(-1, STEM, space.input_shape[0], c.stem_width, None, tuple(space.input_shape[1:]), c.stem_stride)]
    for i, (op, layer, shape) in enumerate(zip(arch.ops, model.layers, shapes, strict=True)):
        out.append(describe_layer(i, op, layer, shape[1], tuple(shape[2:]), space.slots[i].stride))
    last_res = _out_resolution(model.layers[-1], shapes[-1][1], tuple(shapes[-1][2:])) if shapes else None
    out.append(LayerConfig(space.num_layers, HEAD, model.classifier.in_features, space.num_classes, None, last_res, 1))
    return out
