"""Search space: operators and their rules, architectures and their encodings, and child networks."""

from rlnas.space.declaration import Space, space_from_declaration
from rlnas.space.groups import GroupSpace, KeepPlan
from rlnas.space.model import ChildNet
from rlnas.space.ops import OPERATORS
from rlnas.space.space import Arch, LayerSlot, SearchSpace

__all__ = [
    "OPERATORS",
    "Arch",
    "ChildNet",
    "GroupSpace",
    "KeepPlan",
    "LayerSlot",
    "SearchSpace",
    "Space",
    "space_from_declaration",
]
