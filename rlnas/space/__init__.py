"""Search space: operators, architectures and their encodings, and child networks."""

from rlnas.space.model import ChildNet, build_model
from rlnas.space.ops import OPERATORS
from rlnas.space.space import Arch, LayerSlot, SearchSpace

__all__ = ["OPERATORS", "Arch", "ChildNet", "LayerSlot", "SearchSpace", "build_model"]
