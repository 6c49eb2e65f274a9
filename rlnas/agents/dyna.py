"""Virtual rollouts: the controller also learns from a reward model of the children evaluated so far (DyNA-PPO).

In a search every real child costs a training run (or a table look-up standing in for one), while a PPO
update costs milliseconds. DyNA-PPO (Angermueller et al., "Model-based reinforcement learning for biological
sequence design", ICLR 2020) spends that asymmetry: after each real rollout, a reward model is fitted to every
child evaluated so far (:class:`rlnas.agents.surrogate.RewardModel`), and when its leave-one-out R^2 reaches
``min_r2`` (with at least ``min_children`` children) the next ``virtual_rollouts`` rollouts are answered by the
model instead of the environment: an unseen child earns its predicted reward plus ``exploration`` times the
model's standard deviation for it (an upper confidence bound, as in GP-UCB: unfamiliar combinations of choices
near good children look promising until a real evaluation says otherwise). PPO is unchanged: the wrapper sits
between the learner's reward shaping and the environment, and a virtual rollout looks to SB3 like any other.

Virtual steps evaluate nothing: their ``info`` carries the action and ``virtual: True`` but no ``arch``, so the
store, the budget, the TensorBoard child logs and the cache never see them, and the reward shaping ranks a
virtual reward among the real ones without recording it (:mod:`rlnas.agents.reward_shaping`). A child already
evaluated is answered with its real reward. Only one-step episodes (``factorisation: joint``) are supported.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn

from rlnas.agents.surrogate import RewardModel


class VirtualRollouts(VecEnvWrapper):
    """Alternate real rollouts with ``virtual_rollouts`` rollouts answered by a fitted reward model."""

    def __init__(
        self,
        venv: VecEnv,
        rollout_steps: int,
        virtual_rollouts: int,
        min_r2: float = 0.3,
        min_children: int = 16,
        exploration: float = 0.0,
        canonical: Callable[[np.ndarray], tuple[int, ...]] = tuple,
    ) -> None:
        super().__init__(venv)
        self.canonical = canonical  # a virtual child's key among the real ones (the environment's info["action"])
        self.rollout_steps = rollout_steps * venv.num_envs  # environment steps per rollout, all environments
        self.virtual_rollouts, self.min_r2, self.min_children = virtual_rollouts, min_r2, min_children
        self.exploration = exploration
        self.model = RewardModel()
        self.rewards: dict[tuple[int, ...], float] = {}  # every real child: its action and raw reward
        self.virtual_left = 0  # virtual rollouts still to answer, the current one included
        self.steps_in_rollout = 0
        self.fit_r2 = float("nan")
        self._actions: np.ndarray | None = None
        self._last_obs: np.ndarray | None = None

    @property
    def virtual(self) -> bool:
        """Whether the current rollout is answered by the reward model."""
        return self.virtual_left > 0

    def reset(self) -> np.ndarray:
        self._last_obs = self.venv.reset()
        return self._last_obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)
        if not self.virtual:
            self.venv.step_async(actions)

    def step_wait(self) -> VecEnvStepReturn:
        if self.virtual:
            result = self._virtual_step(self._actions)
        else:
            result = self.venv.step_wait()
            self._last_obs = result[0]
            for info, reward in zip(result[3], result[1], strict=True):
                if "action" in info:
                    self.rewards[tuple(int(a) for a in np.ravel(info["action"]))] = float(reward)
        self.steps_in_rollout += len(self._actions)
        if self.steps_in_rollout >= self.rollout_steps:
            self.steps_in_rollout = 0
            self._next_rollout()
        return result

    def _virtual_step(self, actions: np.ndarray) -> VecEnvStepReturn:
        keys = [tuple(int(a) for a in self.canonical(row)) for row in actions]
        mean, std = self.model.predict_with_std(np.array(keys))
        predicted = mean + self.exploration * std
        rewards = np.array([self.rewards.get(k, p) for k, p in zip(keys, predicted, strict=True)], np.float32)
        infos = [{"action": np.array(key), "virtual": True} for key in keys]  # canonical, as the environment's
        return self._last_obs, rewards, np.ones(len(actions), bool), infos

    def _next_rollout(self) -> None:
        if self.virtual:
            self.virtual_left -= 1
        elif self.virtual_rollouts and len(self.rewards) >= self.min_children:
            actions = np.array(list(self.rewards))
            self.fit_r2 = self.model.fit(actions, np.array(list(self.rewards.values())))
            if self.fit_r2 >= self.min_r2:
                self.virtual_left = self.virtual_rollouts

    def state_dict(self) -> dict:
        """The real children seen and the rollout phase (for checkpoints, taken at the start of a rollout)."""
        return {"rewards": [[list(k), r] for k, r in self.rewards.items()], "virtual_left": self.virtual_left}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` wrote; the reward model is refitted on the restored children."""
        self.rewards = {tuple(k): float(r) for k, r in state["rewards"]}
        self.virtual_left, self.steps_in_rollout = int(state["virtual_left"]), 0
        if self.virtual:
            self.model.fit(np.array(list(self.rewards)), np.array(list(self.rewards.values())))
