"""Checkpoints of a PPO search, so a killed search resumes where it stopped.

A checkpoint is taken at the start of a rollout (the policy has just been updated and the rollout buffer is
empty), every ``every_steps`` steps, into ``checkpoints/step_<n>/``: ``model.zip`` (``PPO.save``: policy,
optimiser, timestep counter) and ``state.pt`` (random-number states of torch, numpy and Python, the statistics of
the learner's environment wrappers: reward shaping and virtual rollouts, and how many steps the store held). A
folder is written under a temporary name and renamed when complete, so a crash mid-write leaves no half
checkpoint behind; the last ``keep`` are kept.

Resuming restores all of it; the steps taken after the checkpoint are proposed again and answered from the run's
store (they are cache hits), so nothing is trained twice and the search continues exactly as it would have.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv

from rlnas.config import ConfigError
from rlnas.store import EvaluationStore

CHECKPOINT_FORMAT_VERSION = 1
MODEL_FILE = "model.zip"
STATE_FILE = "state.pt"


class Stateful(Protocol):
    """An environment wrapper whose statistics a checkpoint keeps."""

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


class CheckpointCallback(BaseCallback):
    """Checkpoint the search into ``directory`` at the start of a rollout, every ``every_steps`` real steps (the
    steps the store records; virtual ones, :mod:`rlnas.agents.dyna`, change nothing worth saving)."""

    def __init__(
        self, directory: Path, every_steps: int, wrappers: Mapping[str, Stateful], store: EvaluationStore, keep: int = 2
    ) -> None:
        super().__init__()
        self.directory, self.every_steps, self.keep = Path(directory), every_steps, keep
        self.wrappers, self.store = wrappers, store
        self._last = None

    def _on_training_start(self) -> None:
        self._last = self.store.step_count()

    def _on_rollout_start(self) -> None:
        steps = self.store.step_count()
        if steps - self._last >= self.every_steps:
            save_checkpoint(self.model, self.wrappers, self.store, self.directory, self.keep)
            self._last = steps

    def _on_step(self) -> bool:
        return True


def save_checkpoint(
    model: PPO, wrappers: Mapping[str, Stateful], store: EvaluationStore, directory: Path, keep: int
) -> Path:
    """Write one checkpoint for ``model``'s current timestep and the ``wrappers``' statistics; return its folder."""
    final = directory / f"step_{model.num_timesteps:08d}"
    partial = directory / f".partial_{final.name}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    model.save(partial / MODEL_FILE)
    state = {
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "num_timesteps": model.num_timesteps,
        "store_steps": store.step_count(),
        "torch_rng": torch.get_rng_state(),
        "numpy_rng": np.random.get_state(),
        "python_rng": random.getstate(),
        **{name: wrapper.state_dict() for name, wrapper in wrappers.items()},
    }
    torch.save(state, partial / STATE_FILE)
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    for old in checkpoints(directory)[:-keep]:
        shutil.rmtree(old)
    return final


def checkpoints(directory: Path) -> list[Path]:
    """The complete checkpoint folders in ``directory``, oldest first."""
    return sorted(p for p in Path(directory).glob("step_*") if p.is_dir())


def load_checkpoint(folder: Path, env: VecEnv, wrappers: Mapping[str, Stateful]) -> tuple[PPO, dict[str, Any]]:
    """Restore the model, random-number states and the ``wrappers``' statistics of checkpoint ``folder``.

    Returns the model (attached to ``env``) and the checkpoint's state. A damaged checkpoint raises
    :class:`~rlnas.config.ConfigError` naming it and what to do.
    """
    fix = (
        f"remove {folder} to resume from the checkpoint before it (or from the start of the search; every child "
        "already evaluated is kept in the store and reused)"
    )
    try:
        state = torch.load(folder / STATE_FILE, weights_only=False)
        model = PPO.load(folder / MODEL_FILE, env=env, device="cpu")
    except Exception as err:  # torch and SB3 raise several kinds for a truncated or corrupted file
        raise ConfigError(f"checkpoint {folder} is damaged ({type(err).__name__}: {err}): {fix}") from err
    if not isinstance(state, dict) or state.get("format_version") != CHECKPOINT_FORMAT_VERSION:
        raise ConfigError(f"checkpoint {folder} has an unknown format: {fix}")
    missing = [name for name in wrappers if name not in state]
    if missing:
        raise ConfigError(
            f"checkpoint {folder} was written by a search without {', '.join(missing)} (another agent preset): "
            f"resume with the agent preset the search started with, or {fix}"
        )
    torch.set_rng_state(state["torch_rng"])
    np.random.set_state(state["numpy_rng"])
    random.setstate(state["python_rng"])
    for name, wrapper in wrappers.items():
        wrapper.load_state_dict(state[name])
    return model, state
