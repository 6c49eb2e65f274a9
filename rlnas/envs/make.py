"""The environment an env preset asks for: ``rlnas/PruneModel-v0`` when it names a model, else ``ChildNet-v0``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlnas.config import EnvPreset, load_env_preset
from rlnas.envs.child_net import ChildNetEnv


def make_env(preset: EnvPreset | str | Path, **kwargs: Any) -> ChildNetEnv:
    """``PruneModelEnv(preset, **kwargs)`` for a preset with a ``model:`` section, else ``ChildNetEnv``.

    ``kwargs`` are the environments' shared keyword arguments (``device``, ``store_path``,
    ``target_latency_ms``, ``evaluator``, ``max_evaluations``).
    """
    preset = preset if isinstance(preset, EnvPreset) else load_env_preset(preset)
    if preset.model is not None:
        from rlnas.envs.prune_model import PruneModelEnv  # imports Torch-Pruning only when needed

        return PruneModelEnv(preset, **kwargs)
    return ChildNetEnv(preset, **kwargs)
