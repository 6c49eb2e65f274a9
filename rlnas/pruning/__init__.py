"""Structured pruning of rlnas children: rank channels (importance), then physically remove them (surgery)."""

from rlnas.pruning.importance import l1_importance, top_channels
from rlnas.pruning.prune import kept_channels, prune_child

__all__ = ["kept_channels", "l1_importance", "prune_child", "top_channels"]
