"""Checkpoints of a PPO search, so a killed search resumes where it stopped.

A checkpoint is taken at the start of a rollout (the policy has just been updated and the rollout buffer is
empty), every ``every_steps`` steps, into ``checkpoints/step_<n>/``: the policy as a controller
(``policy.safetensors`` and ``controller.json``, :mod:`rlnas.agents.controller`: a damaged run can start a new
search from it with ``--init-policy``) and ``state.pt``: the optimiser's state, the timestep counter, the
random-number states of torch, numpy and Python, the statistics of the learner's environment wrappers (reward
shaping, virtual rollouts) and what the store held (step and evaluation counts, last ids). ``state.pt`` holds
tensors and plain lists, dicts and numbers only and is read with ``torch.load(weights_only=True)``: no file of a
checkpoint is unpickled. A folder is written under a temporary name and renamed when complete, so a crash
mid-write leaves no half checkpoint behind; the last ``keep`` are kept.

Resuming restores all of it into a freshly built model; the steps taken after the checkpoint are proposed again
and answered from the run's store, so nothing is trained twice, every stored child is fed to the learner as it
was the first time, and the search continues exactly as it would have.
"""

from __future__ import annotations

import json
import pickle
import random
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_model
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.policies import BasePolicy

from rlnas.agents.policy_files import WEIGHTS_FILE
from rlnas.config import ConfigError
from rlnas.store import EvaluationStore

CHECKPOINT_FORMAT_VERSION = 2
STATE_FILE = "state.pt"

PolicyWriter = Callable[[BasePolicy, Path], object]
"""Writes a policy as a controller folder (``policy.safetensors`` + ``controller.json``)."""


class Stateful(Protocol):
    """An environment wrapper whose statistics a checkpoint keeps."""

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


class CheckpointCallback(BaseCallback):
    """Checkpoint the search into ``directory`` at the start of a rollout, every ``every_steps`` real steps (the
    steps the store records; virtual ones, :mod:`rlnas.agents.dyna`, change nothing worth saving)."""

    def __init__(
        self,
        directory: Path,
        every_steps: int,
        wrappers: Mapping[str, Stateful],
        store: EvaluationStore,
        write_policy: PolicyWriter,
        keep: int = 2,
    ) -> None:
        super().__init__()
        self.directory, self.every_steps, self.keep = Path(directory), every_steps, keep
        self.wrappers, self.store, self.write_policy = wrappers, store, write_policy
        self._last = None

    def _on_training_start(self) -> None:
        self._last = self.store.step_count()

    def _on_rollout_start(self) -> None:
        steps = self.store.step_count()
        if steps - self._last >= self.every_steps:
            save_checkpoint(self.model, self.wrappers, self.store, self.directory, self.write_policy, self.keep)
            self._last = steps

    def _on_step(self) -> bool:
        return True


def save_checkpoint(
    model: PPO,
    wrappers: Mapping[str, Stateful],
    store: EvaluationStore,
    directory: Path,
    write_policy: PolicyWriter,
    keep: int,
) -> Path:
    """Write one checkpoint for ``model``'s current timestep and the ``wrappers``' statistics; return its folder."""
    final = directory / f"step_{model.num_timesteps:08d}"
    partial = directory / f".partial_{final.name}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    write_policy(model.policy, partial)
    numpy_rng = np.random.get_state()
    version, python_state, gauss = random.getstate()
    state = {
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "num_timesteps": model.num_timesteps,
        "n_updates": model._n_updates,
        "store": store.extent(),
        "optimizer": model.policy.optimizer.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "numpy_rng": [numpy_rng[0], torch.from_numpy(numpy_rng[1].astype(np.int64)), *numpy_rng[2:]],
        "python_rng": [version, list(python_state), gauss],
        "wrappers": {name: wrapper.state_dict() for name, wrapper in wrappers.items()},
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


def _fix(folder: Path) -> str:
    return (
        f"remove {folder} to resume from the checkpoint before it (or from the start of the search; every child "
        "already evaluated is kept in the store and reused)"
    )


def _first_line(err: Exception) -> str:
    return f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"


def read_state(folder: Path) -> dict[str, Any]:
    """The ``state.pt`` of checkpoint ``folder``, read as data; a damaged or unknown one raises
    :class:`~rlnas.config.ConfigError` naming it and what to do."""
    try:
        state = torch.load(folder / STATE_FILE, weights_only=True)
    except pickle.UnpicklingError as err:  # objects other than tensors and plain data: refused, never built
        raise ConfigError(
            f"checkpoint {folder} holds objects that are not data (tampered with, or written by an rlnas before "
            f"checkpoints were data); it was not loaded: {_fix(folder)}"
        ) from err
    except (OSError, RuntimeError, EOFError, ValueError) as err:
        raise ConfigError(f"checkpoint {folder} is damaged ({_first_line(err)}): {_fix(folder)}") from err
    if not isinstance(state, dict) or state.get("format_version") != CHECKPOINT_FORMAT_VERSION:
        raise ConfigError(f"checkpoint {folder} has an unknown format (written by another rlnas?): {_fix(folder)}")
    return state


def load_checkpoint(folder: Path, model: PPO, wrappers: Mapping[str, Stateful]) -> dict[str, Any]:
    """Restore checkpoint ``folder`` into ``model`` (freshly built for the same agent preset): policy, optimiser,
    timestep counter, random-number states and the ``wrappers``' statistics. Returns the checkpoint's state."""
    state = read_state(folder)
    missing = [name for name in wrappers if name not in state["wrappers"]]
    if missing:
        raise ConfigError(
            f"checkpoint {folder} was written by a search without {', '.join(missing)} (another agent preset): "
            f"resume with the agent preset the search started with, or {_fix(folder)}"
        )
    try:
        load_model(model.policy, str(folder / WEIGHTS_FILE), strict=True)
        model.policy.optimizer.load_state_dict(state["optimizer"])
        np.random.set_state(
            (state["numpy_rng"][0], state["numpy_rng"][1].numpy().astype(np.uint32), *state["numpy_rng"][2:])
        )
        random.setstate((state["python_rng"][0], tuple(state["python_rng"][1]), state["python_rng"][2]))
        torch.set_rng_state(state["torch_rng"])
        for name, wrapper in wrappers.items():
            wrapper.load_state_dict(state["wrappers"][name])
    except (OSError, SafetensorError, RuntimeError, ValueError, KeyError, TypeError, IndexError) as err:
        raise ConfigError(f"checkpoint {folder} is damaged ({_first_line(err)}): {_fix(folder)}") from err
    model.num_timesteps, model._n_updates = int(state["num_timesteps"]), int(state["n_updates"])
    return state


def check_store(store_file: Path, checkpoint_dir: Path, summary_file: Path) -> None:
    """Refuse (:class:`~rlnas.config.ConfigError`) to resume a run whose store lost what its last checkpoint,
    or for a finished run its summary, recorded; or that fails SQLite's integrity check."""
    latest = checkpoints(checkpoint_dir)[-1:]
    if latest:
        source, recorded = f"checkpoint {latest[0]}", read_state(latest[0])["store"]
    elif summary_file.is_file():
        try:
            summary = json.loads(summary_file.read_text())
            recorded = {"evaluations": int(summary.get("evaluated", 0)), "steps": int(summary.get("steps", 0))}
        except (ValueError, TypeError, AttributeError) as err:
            raise ConfigError(f"{summary_file} is damaged ({err}): remove it to resume the run") from err
        source = str(summary_file)
    else:
        return  # stopped before its first checkpoint: nothing was recorded to check against
    if not store_file.is_file() or store_file.stat().st_size == 0:
        lost = "the store file is missing or empty"
    else:
        store = EvaluationStore(store_file)
        try:
            lost = store.missing(recorded)
        finally:
            store.close()
    if lost:
        policy = latest[0] if latest else summary_file.parent / "policy"
        restart = f"from this run's policy (`--init-policy {policy}`)" if policy.is_dir() else "with the same presets"
        raise ConfigError(
            f"{store_file} does not hold what {source} recorded: {lost}. Resuming would redo or drop that work "
            f"silently: restore the store (with its -wal file) if you can, or start a new search {restart}"
        )
