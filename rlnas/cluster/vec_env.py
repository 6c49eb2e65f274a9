"""``ThreadVecEnv``: SB3's ``DummyVecEnv`` with every environment stepped in its own thread.

For environments whose step waits on something else (a Ray worker evaluating the child): the batch's children
are evaluated at once while the store, cache and budget logic stays in each environment's own ``step``.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from copy import deepcopy

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import DummyVecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn


class ThreadVecEnv(DummyVecEnv):
    """Steps its environments concurrently; otherwise exactly ``DummyVecEnv`` (same order, resets and infos)."""

    def __init__(self, env_fns: list[Callable[[], gym.Env]]) -> None:
        super().__init__(env_fns)
        self._threads = ThreadPoolExecutor(max_workers=self.num_envs, thread_name_prefix="rlnas-env")

    def step_wait(self) -> VecEnvStepReturn:
        steps = list(self._threads.map(lambda i: self.envs[i].step(self.actions[i]), range(self.num_envs)))
        for i, (obs, reward, terminated, truncated, info) in enumerate(steps):
            self.buf_rews[i], self.buf_dones[i], self.buf_infos[i] = reward, terminated or truncated, info
            info["TimeLimit.truncated"] = truncated and not terminated
            if self.buf_dones[i]:
                info["terminal_observation"] = obs
                obs, self.reset_infos[i] = self.envs[i].reset()
            self._save_obs(i, obs)
        return self._obs_from_buf(), np.copy(self.buf_rews), np.copy(self.buf_dones), deepcopy(self.buf_infos)

    def close(self) -> None:
        self._threads.shutdown()
        super().close()
