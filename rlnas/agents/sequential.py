"""Autoregressive action-space factorisation: design a child one decision per step (as ENAS/NASNet's RNN
controller does), so a policy over the partial architecture can model interactions between layers.

:class:`SequentialLayout` holds the encoding (shared by the wrapper and the controller, which needs no
environment); :class:`SequentialDesign` is the Gymnasium wrapper around the one-step ``ChildNetEnv``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class SequentialLayout:
    """How a ``MultiDiscrete(nvec)`` action is decided one dimension at a time.

    Only dimensions with more than one choice are decisions (a single-choice dimension is always 0). The
    policy's action is ``Discrete(max choices)``; an index beyond a shorter dimension's choices wraps around
    (``a % n``), so every action is valid and :meth:`fold` gives the probabilities of the real choices.

    Observation: the decisions so far (one-hot per decision, zeros where not yet decided), the position
    (one-hot over the decisions; all zeros once the child is complete), then the wrapped env's observation.
    """

    def __init__(self, nvec: list[int] | np.ndarray) -> None:
        self.nvec = np.asarray(nvec, dtype=np.int64)
        self.dims = [int(d) for d in np.flatnonzero(self.nvec > 1)]
        if not self.dims:
            raise ValueError("the action space has no dimension with more than one choice: nothing to decide")
        self.choices = [int(self.nvec[d]) for d in self.dims]
        self.n_actions = max(self.choices)
        self._offsets = np.concatenate([[0], np.cumsum(self.choices)])
        self.prefix_size = int(self._offsets[-1]) + len(self.dims)

    @property
    def steps(self) -> int:
        """Decisions (environment steps) per child."""
        return len(self.dims)

    def spaces(self, base: spaces.Box) -> tuple[spaces.Box, spaces.Discrete]:
        """The policy's observation and action spaces, given the wrapped env's observation space ``base``."""
        prefix = self.prefix_size
        low = np.concatenate([np.zeros(prefix, dtype=np.float32), np.asarray(base.low, dtype=np.float32).ravel()])
        high = np.concatenate([np.ones(prefix, dtype=np.float32), np.asarray(base.high, dtype=np.float32).ravel()])
        return spaces.Box(low, high, dtype=np.float32), spaces.Discrete(self.n_actions)

    def choice(self, position: int, action: int) -> int:
        """The choice the policy's ``action`` means at decision ``position``."""
        return int(action) % self.choices[position]

    def observation(self, decisions: list[int], base_obs: np.ndarray) -> np.ndarray:
        """The policy's input after ``decisions`` (choices, not raw actions), given the env's observation."""
        prefix = np.zeros(self.prefix_size, dtype=np.float32)
        for position, choice in enumerate(decisions):
            prefix[self._offsets[position] + choice] = 1.0
        if len(decisions) < self.steps:
            prefix[self._offsets[-1] + len(decisions)] = 1.0
        return np.concatenate([prefix, np.asarray(base_obs, dtype=np.float32).ravel()])

    def full_action(self, decisions: list[int]) -> np.ndarray:
        """The wrapped env's ``MultiDiscrete`` action for a complete list of choices."""
        action = np.zeros(len(self.nvec), dtype=np.int64)
        action[self.dims] = decisions
        return action

    def decisions(self, action: np.ndarray) -> list[int]:
        """The choices that make up a ``MultiDiscrete`` action (its multi-choice dimensions)."""
        return [int(a) for a in np.asarray(action)[self.dims]]

    def fold(self, position: int, probs: np.ndarray) -> np.ndarray:
        """The probabilities of the real choices at ``position`` from the policy's action probabilities."""
        n = self.choices[position]
        folded = np.zeros(n, dtype=np.float64)
        np.add.at(folded, np.arange(len(probs)) % n, probs)
        return folded


class SequentialDesign(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Turn a one-step env with a ``MultiDiscrete`` action into an episode of one decision per dimension.

    ## Action Space
    ``Discrete(max choices)``: the choice for the current dimension (wrapping around for shorter dimensions).

    ## Observation Space
    ``Box``: the decisions so far (one-hot), the position (one-hot) and the wrapped env's observation (see
    :class:`SequentialLayout`).

    ## Rewards
    0 for every decision but the last, which steps the wrapped env with the full action and returns its reward
    and ``info`` (so only terminal steps carry a child). Use ``gamma = 1``.

    ## Episode End
    After the last decision, when the wrapped env's episode ends.
    """

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)
        if not isinstance(env.action_space, spaces.MultiDiscrete):
            raise TypeError(f"SequentialDesign needs a MultiDiscrete action space, not {env.action_space}")
        self.layout = SequentialLayout(env.action_space.nvec)
        self.observation_space, self.action_space = self.layout.spaces(env.observation_space)
        self._decisions: list[int] = []
        self._base_obs = np.zeros(env.observation_space.shape, dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Reset the wrapped env; no decision made yet."""
        self._base_obs, info = self.env.reset(seed=seed, options=options)
        self._decisions = []
        return self.layout.observation(self._decisions, self._base_obs), info

    def step(self, action: int):
        """Record one decision; after the last one, evaluate the child in the wrapped env."""
        if len(self._decisions) >= self.layout.steps:
            raise RuntimeError("the child is complete: call reset() before the next decision")
        self._decisions.append(self.layout.choice(len(self._decisions), int(action)))
        if len(self._decisions) < self.layout.steps:
            return self.layout.observation(self._decisions, self._base_obs), 0.0, False, False, {}
        self._base_obs, reward, terminated, truncated, info = self.env.step(self.layout.full_action(self._decisions))
        return self.layout.observation(self._decisions, self._base_obs), reward, terminated, truncated, info
