"""``ChildNetEnv``: one step designs, trains, prunes and measures one child network."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rlnas.config import EnvPreset, load_env_preset
from rlnas.envs.evaluators import Evaluator, make_evaluator
from rlnas.envs.reward import compute_reward, failure_terms
from rlnas.store import EvaluationStore

ENV_ID = "rlnas/ChildNet-v0"
OBSERVATION_LAYOUT = ("target_latency_ms / reference_ms",)
"""What each entry of the observation means; stored beside trained policies."""
MAX_TARGET_RATIO = 100.0


class ChildNetEnv(gym.Env):
    """Design a child CNN layer by layer; the reward mixes its accuracy and latency.

    ## Action Space
    ``MultiDiscrete([n_ops, n_keeps] * layers)``: for every searchable layer, a 0-based index into the
    space's operators and one into its keep-ratios (see :class:`rlnas.space.SearchSpace`).

    ## Observation Space
    ``Box(0, 100, (1,), float32)``: the latency target divided by the preset's ``reward.target_ms``
    (the reference), so one policy can be asked for another target (``reset(options={"target_latency_ms": x})``).
    Always 1 when the reward has no latency target (``reward.kind: accuracy`` or ``reward.cost: flops``).

    ## Rewards
    MnasNet's ``acc * (cost / T) ** w`` with cost = latency or FLOPs, or the accuracy alone (see
    :mod:`rlnas.envs.reward`); ``reward.failure_reward`` (default 0) for a child whose training diverged,
    with the reason in ``info["reason"]``.

    ## Episode End
    Every episode is one step: ``terminated`` is always True, ``truncated`` always False.

    ## Arguments
    ``preset``: an :class:`~rlnas.config.EnvPreset`, a preset name (``"fashion_mnist"``) or YAML path.
    ``device``: where children train (``"cpu"`` or ``"cuda"``). ``store_path``: SQLite file that receives
    every evaluation before its reward is returned. ``target_latency_ms``: overrides the preset's target.
    ``evaluator``: any object with ``space`` and ``evaluate(arch)``, e.g. for tests.

    ## Version History
    * v0: first version.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(
        self,
        preset: EnvPreset | str | Path = "fashion_mnist",
        *,
        device: str = "cpu",
        store_path: str | Path | None = None,
        target_latency_ms: float | None = None,
        evaluator: Evaluator | None = None,
    ) -> None:
        self.preset = preset if isinstance(preset, EnvPreset) else load_env_preset(preset)
        self.evaluator = evaluator if evaluator is not None else make_evaluator(self.preset, device)
        self.space = self.evaluator.space
        self.reference_ms = self.preset.reward.latency_target
        self.target_ms = self.reference_ms
        if target_latency_ms is not None:
            self.target_ms = self._checked_target(target_latency_ms)
        self.store = EvaluationStore(store_path) if store_path is not None else None
        # Built directly (not through gymnasium.make), the env still gets its registered spec, with the arguments
        # it was built with, so spec.make() rebuilds this env and checkers see it is nondeterministic (children
        # train stochastically and latency is measured). gymnasium.make replaces this spec with its own.
        built_with = {"preset": self.preset, "device": device, "store_path": store_path}
        built_with |= {"target_latency_ms": target_latency_ms, "evaluator": evaluator}
        self.spec = dataclasses.replace(gym.spec(ENV_ID), kwargs=built_with)
        self.action_space = spaces.MultiDiscrete(self.space.nvec)
        self.observation_space = spaces.Box(0.0, MAX_TARGET_RATIO, shape=(1,), dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an episode; ``options={"target_latency_ms": x}`` changes the latency target."""
        super().reset(seed=seed)
        if options and "target_latency_ms" in options:
            self.target_ms = self._checked_target(float(options["target_latency_ms"]))
        return self._observation(), {}

    def step(self, action: np.ndarray):
        """Evaluate the child the action describes; the episode ends."""
        arch = self.space.decode(action)
        result = self.evaluator.evaluate(arch)
        if result.status == "ok":
            terms = compute_reward(self.preset.reward, result.accuracy, result.latency_ms, result.flops, self.target_ms)
        else:
            terms = failure_terms(self.preset.reward, self.target_ms)
        info = {**result.as_dict(), **terms.as_dict(), "action": [int(a) for a in np.asarray(action)]}
        if self.store is not None:
            info["store_id"] = self.store.add(info)
        return self._observation(), float(terms.reward), True, False, info

    def close(self) -> None:
        """Close the evaluation store."""
        if self.store is not None:
            self.store.close()
            self.store = None

    def _observation(self) -> np.ndarray:
        ratio = 1.0 if self.reference_ms is None else self.target_ms / self.reference_ms
        return np.array([ratio], dtype=np.float32)

    def _checked_target(self, target_ms: float) -> float:
        if self.reference_ms is None:
            raise ValueError(
                f"env preset {self.preset.name!r} has no latency target to change (reward.kind "
                f"{self.preset.reward.kind}, reward.cost {self.preset.reward.cost}); its observation is always 1"
            )
        if not 0 < target_ms / self.reference_ms <= MAX_TARGET_RATIO:
            raise ValueError(
                f"target latency {target_ms} ms is out of range: give a positive value up to "
                f"{MAX_TARGET_RATIO:g}x the preset's reward.target_ms ({self.reference_ms} ms)"
            )
        return target_ms
