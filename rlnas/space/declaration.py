"""A space from its declaration, whichever kind: a declared CNN space, or the groups of a model to prune."""

from __future__ import annotations

from typing import TypeAlias

from rlnas.space.groups import KIND, GroupSpace
from rlnas.space.space import SearchSpace

Space: TypeAlias = SearchSpace | GroupSpace
"""What a search runs over: both kinds offer the same actions, strings, declaration and fingerprint."""


def space_from_declaration(data: dict) -> Space:
    """Rebuild the space ``data`` (a ``declaration()``) describes."""
    if data.get("kind") == KIND:
        return GroupSpace.from_declaration(data)
    return SearchSpace.from_declaration(data)
