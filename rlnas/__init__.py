"""rlnas: search and prune CNNs with reinforcement learning.

A Gymnasium environment (``rlnas/ChildNet-v0``) whose action picks an operator and a channel keep-ratio
for every layer of a child CNN, and a stable-baselines3 PPO controller that learns to pick well.
"""

from gymnasium import register

from rlnas.config import AgentPreset, ConfigError, EnvPreset, load_agent_preset, load_env_preset
from rlnas.pruning import build_model
from rlnas.space import Arch, SearchSpace

__version__ = "0.1.0"

register(id="rlnas/ChildNet-v0", entry_point="rlnas.envs.child_net:ChildNetEnv", nondeterministic=True)
register(id="rlnas/PruneModel-v0", entry_point="rlnas.envs.prune_model:PruneModelEnv", nondeterministic=True)

_LAZY = {  # imported on first use: they pull in stable-baselines3
    "load_controller": "rlnas.agents.controller",
    "run_search": "rlnas.search",
    "resume_search": "rlnas.search",
    "load_pruned": "rlnas.pruning.foreign",  # these pull in Torch-Pruning
    "prune_model": "rlnas.pruning.foreign",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rlnas' has no attribute {name!r}")


__all__ = [
    "AgentPreset",
    "Arch",
    "ConfigError",
    "EnvPreset",
    "SearchSpace",
    "__version__",
    "build_model",
    "load_agent_preset",
    "load_controller",
    "load_env_preset",
    "load_pruned",
    "prune_model",
    "resume_search",
    "run_search",
]
