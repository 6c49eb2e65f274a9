"""Build a child from its search space and architecture, or from its architecture JSON, full width or pruned."""

from __future__ import annotations

import json

from rlnas.pruning.prune import prune_child
from rlnas.space.model import ChildNet
from rlnas.space.space import Arch, SearchSpace


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
        # Channel counts depend only on the keep-ratios, not on which channels pruning keeps.
        prune_child(model, None if keeps is None else tuple(keeps))
    return model
