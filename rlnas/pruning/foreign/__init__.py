"""Prune a model the user brings (any torchvision model or ``package.module:factory``) with Torch-Pruning."""

from rlnas.pruning.foreign.engine import Group, Pruner, PruningError, load_pruned, prune_model
from rlnas.pruning.foreign.models import ModelSpecError, build_named_model, load_checkpoint

__all__ = [
    "Group",
    "ModelSpecError",
    "Pruner",
    "PruningError",
    "build_named_model",
    "load_checkpoint",
    "load_pruned",
    "prune_model",
]
