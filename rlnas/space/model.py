"""Child networks: a fixed stem, one operator per searchable layer, global pooling and a classifier."""

from __future__ import annotations

import json

import torch
from torch import Tensor, nn

from rlnas.space.ops import OPERATORS, ConvBN
from rlnas.space.space import Arch, SearchSpace


class ChildNet(nn.Module):
    """An ordinary ``nn.Module``; after pruning its layers are simply narrower (no masks)."""

    def __init__(self, space: SearchSpace, arch: Arch) -> None:
        super().__init__()
        space.validate(arch)
        self.arch = str(arch)
        self.space_declaration = space.declaration()
        c = space.config
        self.stem = ConvBN(space.input_shape[0], c.stem_width, 3, c.stem_stride)
        self.layers = nn.ModuleList(
            OPERATORS[op](slot.c_in, slot.c_out, slot.stride) for op, slot in zip(arch.ops, space.slots, strict=True)
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(space.slots[-1].c_out, space.num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        for layer in self.layers:
            x = layer(x)
        return self.classifier(torch.flatten(self.pool(x), 1))

    def arch_json(self) -> str:
        """The architecture and its space as JSON; with a ``state_dict`` it rebuilds this model."""
        return json.dumps({"arch": self.arch, "space": self.space_declaration})


def build_model(space: SearchSpace, arch: Arch | str) -> ChildNet:
    """Build the full-width (unpruned) child for ``arch``."""
    return ChildNet(space, space.parse(arch) if isinstance(arch, str) else arch)
