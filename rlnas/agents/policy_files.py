"""A controller's policy as data: its tensors in ``policy.safetensors``, its shape in ``controller.json``.

Loading reads tensors and JSON only and rebuilds the network from rlnas's own classes
(:class:`~rlnas.agents.policy.BatchedMlpPolicy` over the spaces :func:`policy_spaces` derives from the search
space), so a controller taken from someone else runs no code of theirs. SB3's ``policy.zip`` is still written
beside it for ``PPO.load`` users, but ``PPO.load`` unpickles: it runs whatever code the file names, and rlnas
never reads it except in :func:`convert_controller`, which the user asks for explicitly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from gymnasium import spaces
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model
from stable_baselines3.common.policies import ActorCriticPolicy

from rlnas.agents.policy import BatchedMlpPolicy
from rlnas.agents.sequential import SequentialLayout
from rlnas.config import ConfigError
from rlnas.envs.child_net import child_spaces
from rlnas.space import Space

CONTROLLER_FORMAT_VERSION = 2
"""1: ``policy.zip`` only (convert with :func:`convert_controller`); 2: ``policy.safetensors`` + declaration."""
META_FILE = "controller.json"
WEIGHTS_FILE = "policy.safetensors"
SB3_FILE = "policy.zip"
POLICY_CLASS = "rlnas.agents.policy.BatchedMlpPolicy"


def policy_spaces(space: Space, factorisation: str) -> tuple[spaces.Box, spaces.Space]:
    """The observation and action spaces a ``factorisation`` policy for ``space`` acts in (as its env has them)."""
    observation, action = child_spaces(space)
    return SequentialLayout(space.nvec).spaces(observation) if factorisation == "sequential" else (observation, action)


def policy_declaration(policy: ActorCriticPolicy) -> dict[str, Any]:
    """What rebuilds ``policy`` besides its tensors (for ``controller.json``).

    SB3's ``MlpPolicy`` (controllers trained before :class:`BatchedMlpPolicy`) has the same tensors.
    """
    if type(policy) not in (BatchedMlpPolicy, ActorCriticPolicy) or policy.activation_fn is not torch.nn.Tanh:
        raise TypeError(f"only an MlpPolicy with its default activation can be saved as data, not {type(policy)}")
    return {"class": POLICY_CLASS, "weights": WEIGHTS_FILE, "net_arch": policy.net_arch}


def save_policy(policy: ActorCriticPolicy, directory: Path) -> dict[str, Any]:
    """Write ``policy``'s tensors into ``directory``; return its declaration."""
    declaration = policy_declaration(policy)
    save_model(policy, str(directory / WEIGHTS_FILE))
    return declaration


def load_policy(folder: Path, declaration: Any, space: Space, factorisation: str) -> BatchedMlpPolicy:
    """Rebuild the policy ``declaration`` describes and read its tensors from ``folder`` (no unpickling)."""
    where = folder / META_FILE
    if not isinstance(declaration, dict) or declaration.get("class") != POLICY_CLASS:
        raise ConfigError(f"{where}: policy must declare class {POLICY_CLASS}, not {declaration!r}")
    net_arch = declaration.get("net_arch")
    if not _is_net_arch(net_arch):
        raise ConfigError(f"{where}: policy.net_arch {net_arch!r} is not a list of layer sizes (or pi/vf lists)")
    observation, action = policy_spaces(space, factorisation)
    with torch.random.fork_rng(devices=[]):  # the initial weights are overwritten: spare the caller's RNG
        policy = BatchedMlpPolicy(observation, action, lambda _: 0.0, net_arch=net_arch)
    try:
        load_model(policy, str(folder / WEIGHTS_FILE), strict=True)
    except (OSError, SafetensorError, RuntimeError) as err:  # missing, damaged, or tensors of another shape
        reason = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise ConfigError(
            f"{folder / WEIGHTS_FILE} could not be loaded ({type(err).__name__}: {reason}): take the controller's "
            f"{WEIGHTS_FILE} and controller.json as written together"
        ) from err
    return policy.eval()


def _is_net_arch(value: Any) -> bool:
    def sizes(v: Any) -> bool:
        return isinstance(v, list) and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in v)

    return sizes(value) or (isinstance(value, dict) and set(value) == {"pi", "vf"} and all(map(sizes, value.values())))


def convert_controller(folder: str | Path) -> Path:
    """Add ``policy.safetensors`` to a controller folder written before rlnas saved policies as data.

    This reads the folder's ``policy.zip`` with ``PPO.load``, which UNPICKLES it (runs any code it names):
    convert only controllers you trust, once; the converted folder then loads as data.
    """
    from stable_baselines3 import PPO

    folder = Path(folder)
    meta = json.loads((folder / META_FILE).read_text())
    model = PPO.load(folder / SB3_FILE, device="cpu")
    meta["policy"] = save_policy(model.policy, folder)
    meta["format_version"] = CONTROLLER_FORMAT_VERSION
    (folder / META_FILE).write_text(json.dumps(meta, indent=2))
    return folder


def main(argv: list[str] | None = None) -> None:
    """``python -m rlnas.agents.policy_files FOLDER...``: convert trusted old controller folders."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m rlnas.agents.policy_files", description=convert_controller.__doc__)
    parser.add_argument("folders", nargs="+", type=Path, help="controller folders (controller.json + policy.zip)")
    for folder in parser.parse_args(argv).folders:
        try:
            print(f"converted {convert_controller(folder)}")
        except (OSError, ValueError, TypeError) as err:
            raise SystemExit(f"{folder}: not converted ({type(err).__name__}: {err})") from err


if __name__ == "__main__":
    main()
