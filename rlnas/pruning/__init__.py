"""Structured pruning of rlnas children: rank channels (importance), then physically remove them (surgery).

What each operator prunes is its rule in :mod:`rlnas.space.rules`; :func:`build_model` builds a child full width
or in its pruned shape.
"""

from rlnas.pruning.build import build_model
from rlnas.pruning.importance import l1_importance, top_channels
from rlnas.pruning.prune import kept_channels, prune_child

__all__ = ["build_model", "kept_channels", "l1_importance", "prune_child", "top_channels"]
