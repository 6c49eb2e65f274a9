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

        ``build_model(model.arch_json())`` builds a model of the same shape, so this model's ``state_dict`` loads.
        """
        keeps = None if self.pruned_keeps is None else list(self.pruned_keeps)
        return json.dumps({"arch": self.arch, "space": self.space_declaration, "pruned_keeps": keeps})


def build_model(
    space: SearchSpace | str | dict, arch: Arch | str | None = None, *, pruned: bool | None = None
) -> ChildNet:
    """Build the child for ``arch`` in ``space``, or from the architecture JSON of :meth:`ChildNet.arch_json`.

    ``space`` is a :class:`SearchSpace` (then ``arch`` is required) or that JSON (a string or the parsed dict;
    its ``arch`` is used unless ``arch`` is given). ``pruned``: build the pruned shape (the channel counts
    :func:`rlnas.pruning.prune_child` leaves) so a pruned model's ``state_dict`` loads into it; default: pruned
    when the JSON records keep-ratios it was pruned to, else the full-width child. Weights are freshly
    initialised either way.
    """
    keeps = None
    if not isinstance(space, SearchSpace):
        data = json.loads(space) if isinstance(space, str) else space
        space, arch = SearchSpace.from_declaration(data["space"]), data["arch"] if arch is None else arch
        keeps = data.get("pruned_keeps")
        pruned = keeps is not None if pruned is None else pruned
    if arch is None:
        raise TypeError("build_model(space, arch): an architecture is needed when a SearchSpace is given")
    model = ChildNet(space, space.parse(arch) if isinstance(arch, str) else arch)
    if pruned:
        from rlnas.pruning import prune_child  # pruning builds on this module

        # Channel counts depend only on the keep-ratios, not on which channels pruning keeps.
        prune_child(model, None if keeps is None else tuple(keeps))
    return model
