"""Child networks: a fixed stem, one operator per searchable layer, global pooling and a classifier.

``ChildNet(space, arch)`` is the full-width child; :func:`rlnas.pruning.build_model` also builds it in its
pruned shape (from the architecture JSON), since what a keep-ratio prunes is pruning's business.
"""

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
        self.pruned_keeps: tuple[float, ...] | None = None  # set by rlnas.pruning.prune_child
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
        """The architecture, its space and the keep-ratios it was pruned to (null: unpruned), as JSON.

        :func:`rlnas.pruning.build_model` builds a model of the same shape from it, so this model's ``state_dict``
        loads.
        """
        keeps = None if self.pruned_keeps is None else list(self.pruned_keeps)
        return json.dumps({"arch": self.arch, "space": self.space_declaration, "pruned_keeps": keeps})
