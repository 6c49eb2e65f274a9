"""``ChildNetEnv``: one step designs, trains, prunes and measures one child network."""

from __future__ import annotations

import dataclasses
import time
import warnings
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rlnas.config import EnvPreset, load_env_preset
from rlnas.envs.evaluator_factory import make_evaluator
from rlnas.envs.evaluators import EvalResult, Evaluator, cache_key, evaluator_settings
from rlnas.envs.multiplier import AdaptiveMultiplier
from rlnas.envs.reward import reward_for
from rlnas.space import SearchSpace
from rlnas.store import EvaluationStore

ENV_ID = "rlnas/ChildNet-v0"
OBSERVATION_LAYOUT = ("target_latency_ms / reference_ms",)
"""What each entry of the observation means; stored beside trained policies."""
MAX_TARGET_RATIO = 100.0


class ChildNetEnv(gym.Env):
    """Design a child CNN layer by layer; the reward mixes its accuracy and latency.

    ## Action Space
    ``MultiDiscrete([n_ops, n_keeps] * layers)``: for every searchable layer, a 0-based index into the
    space's operators and one into its keep-ratios (see :class:`rlnas.space.SearchSpace`). Whole numbers given as
    floats (``2.0``) are accepted; anything else (``1.9``, out of range, the wrong length) raises ``ValueError``.

    ## Observation Space
    ``Box(0, 100, (1,), float32)``: the latency target divided by the preset's ``reward.target_ms``
    (the reference), so one policy can be asked for another target (``reset(options={"target_latency_ms": x})``).
    Always 1 when the reward has no latency target (``reward.kind: accuracy`` or ``reward.cost: flops``).

    ## Rewards
    With a latency or FLOPs target T, by default the accuracy within the budget (cost <= T) and less over it
    (``reward.kind: budget``; with ``reward.multiplier: adaptive`` the penalty is a Lagrange multiplier adapted
    from the children so far, ``info["multiplier"]``); MnasNet's ``acc * (cost / T) ** w`` and the others are
    options; or the accuracy alone (see :mod:`rlnas.envs.reward`). ``reward.failure_reward`` (default 0) for a
    child whose training diverged (``info["status"]`` ``diverged``) or whose reward could not be computed
    (``reward_error``: a custom reward function raised or gave no finite number; the child's metrics are kept),
    with the reason in ``info["reason"]``.

    ## Episode End
    Every episode is one step: ``terminated`` is True. With ``max_evaluations``, a step that would evaluate a new
    child beyond that budget evaluates nothing: ``truncated`` is True, the reward 0, ``info["budget_exhausted"]``.

    ## Evaluation cache
    Every evaluation is stored under its :func:`~rlnas.envs.evaluators.cache_key` (space fingerprint,
    architecture, evaluator settings); a child already in the store is not evaluated again: its metrics are
    reused, its reward recomputed for the current target, and ``info["cached"]`` is True once a step has reached it
    (``info["replayed"]``: a stored child a step reaches for the first time, as when a resumed search takes again
    the steps after its checkpoint; it counts as a new child, as it did the first time). Environments sharing
    one ``store_path`` (e.g. in subprocesses) share the cache and never evaluate one child twice. Children that
    build the same network (equal up to identity layers, :meth:`~rlnas.space.SearchSpace.canonical_action`) are
    one child: the step evaluates their representative, whose action ``info["action"]`` holds.

    ## Arguments
    ``preset``: an :class:`~rlnas.config.EnvPreset`, a preset name (``"fashion_mnist"``) or YAML path.
    ``device``: where children train (``"cpu"`` or ``"cuda"``). ``store_path``: SQLite file that receives
    every evaluation before its reward is returned (default: a private in-memory store).
    ``target_latency_ms``: overrides the preset's target. ``evaluator``: any object with ``space`` and
    ``evaluate(arch)``, e.g. for tests. ``max_evaluations``: the most distinct children the store may hold.

    ## Version History
    * v0: first version.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}
    env_id: ClassVar[str] = ENV_ID

    def __init__(
        self,
        preset: EnvPreset | str | Path = "fashion_mnist",
        *,
        device: str = "cpu",
        store_path: str | Path | None = None,
        target_latency_ms: float | None = None,
        evaluator: Evaluator | None = None,
        max_evaluations: int | None = None,
    ) -> None:
        self.preset = preset if isinstance(preset, EnvPreset) else load_env_preset(preset)
        self.evaluator = evaluator if evaluator is not None else self._default_evaluator(device)
        self.space = self.evaluator.space
        self.reference_ms = self.preset.reward.latency_target
        self.target_ms = self.reference_ms
        if target_latency_ms is not None:
            self.target_ms = checked_target(self.preset, target_latency_ms)
        self.store: EvaluationStore | None = EvaluationStore(store_path if store_path is not None else ":memory:")
        self.max_evaluations = max_evaluations
        adaptive = self.preset.reward.kind == "budget" and self.preset.reward.multiplier == "adaptive"
        self._multiplier = AdaptiveMultiplier(self.preset.reward) if adaptive else None
        self._settings = evaluator_settings(self.evaluator)
        # Built directly (not through gymnasium.make), the env still gets its registered spec, with the arguments
        # it was built with, so spec.make() rebuilds this env and checkers see it is nondeterministic (children
        # train stochastically and latency is measured). gymnasium.make replaces this spec with its own.
        built_with = {"preset": self.preset, "device": device, "store_path": store_path}
        built_with |= {
            "target_latency_ms": target_latency_ms,
            "evaluator": evaluator,
            "max_evaluations": max_evaluations,
        }
        self.spec = dataclasses.replace(gym.spec(self.env_id), kwargs=built_with)
        self.observation_space, self.action_space = child_spaces(self.space)

    def _default_evaluator(self, device: str) -> Evaluator:
        """The evaluator ``self.preset`` asks for."""
        return make_evaluator(self.preset, device)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an episode; ``options={"target_latency_ms": x}`` changes the latency target."""
        super().reset(seed=seed)
        if options and "target_latency_ms" in options:
            self.target_ms = checked_target(self.preset, float(options["target_latency_ms"]))
        return self._observation(), {}

    def step(self, action: np.ndarray):
        """Evaluate the child the action describes (or reuse its stored evaluation); the episode ends."""
        if self.store is None:
            raise RuntimeError("this environment was closed; make a new one")
        canonical = self.space.canonical_action(action)
        arch = self.space.decode(canonical)
        key = cache_key(self.space.fingerprint, arch, self._settings)
        stored = self._stored_or_claimed(key)
        if stored == "exhausted":
            info = {"budget_exhausted": True, "max_evaluations": self.max_evaluations}
            return self._observation(), 0.0, False, True, info
        result = EvalResult.from_record(stored) if stored else self.evaluator.evaluate(arch)
        reward_cfg = self.preset.reward
        if self._multiplier is not None:
            reward_cfg = dataclasses.replace(reward_cfg, penalty=self._multiplier.current(self.store))
        terms, result = reward_for(reward_cfg, result, self.target_ms)
        if result.status == "reward_error":
            failure = self.preset.reward.failure_reward  # one warning per distinct reason, not one per child
            warnings.warn(f"{result.reason}: the child gets reward.failure_reward ({failure})", RuntimeWarning, 2)
        info = {**result.as_dict(), **terms.as_dict(), "action": list(canonical), "key": key}
        if self._multiplier is not None:
            info["multiplier"] = reward_cfg.penalty
        if stored:
            evaluation, (step, cached) = stored["id"], self.store.add_step(stored["id"], terms.reward, terms.target)
        else:
            (evaluation, step), cached = self.store.add(info, terms.reward, terms.target), False
        info |= {"store_id": evaluation, "step_id": step, "cached": cached, "replayed": bool(stored) and not cached}
        info["evaluations"] = len(self.store)
        return self._observation(), float(terms.reward), True, False, info

    def _stored_or_claimed(self, key: str, poll_s: float = 0.05) -> dict | None:
        """The stored evaluation of ``key``; None once this env has claimed it; "exhausted" past the budget."""
        stored = self.store.lookup(key)  # a cache hit needs no write transaction
        if stored is not None:
            return stored
        while True:
            claim = self.store.claim(key, self.max_evaluations)
            if claim == "claimed":
                return None
            if claim == "exhausted":
                return claim
            if claim == "evaluated":
                return self.store.lookup(key)
            time.sleep(poll_s)  # another environment is evaluating this child: wait for its result

    def close(self) -> None:
        """Close the evaluation store."""
        if self.store is not None:
            self.store.close()
            self.store = None

    def _observation(self) -> np.ndarray:
        return target_observation(self.target_ms, self.reference_ms)


def target_observation(target_ms: float | None, reference_ms: float | None) -> np.ndarray:
    """The observation (:data:`OBSERVATION_LAYOUT`): the latency target over the preset's reference target, or 1
    when there is no target; the environment and a trained controller both compute it here."""
    ratio = 1.0 if target_ms is None or reference_ms is None else target_ms / reference_ms
    return np.array([ratio], dtype=np.float32)


def child_spaces(space: SearchSpace) -> tuple[spaces.Box, spaces.MultiDiscrete]:
    """The environment's observation and action spaces for ``space`` (also what a saved policy is rebuilt for)."""
    return spaces.Box(0.0, MAX_TARGET_RATIO, shape=(1,), dtype=np.float32), spaces.MultiDiscrete(space.nvec)


def checked_target(preset: EnvPreset, target_ms: float) -> float:
    """``target_ms`` if ``preset``'s reward has a latency target it may replace; else a clear error."""
    reference_ms = preset.reward.latency_target
    if reference_ms is None:
        raise ValueError(
            f"env preset {preset.name!r} has no latency target to change (reward.kind "
            f"{preset.reward.kind}, reward.cost {preset.reward.cost}); its observation is always 1"
        )
    return checked_ratio(target_ms, reference_ms)


def checked_ratio(target_ms: float, reference_ms: float) -> float:
    """``target_ms`` if it is positive and at most ``MAX_TARGET_RATIO`` times ``reference_ms``; else a clear error."""
    if not 0 < target_ms / reference_ms <= MAX_TARGET_RATIO:
        raise ValueError(
            f"target latency {target_ms} ms is out of range: give a positive value up to "
            f"{MAX_TARGET_RATIO:g}x the preset's reward.target_ms ({reference_ms} ms)"
        )
    return target_ms
