"""What the PPO learner sees as reward (the environment, the store and the logs keep the raw reward).

``rank``: a reward becomes its percentile among all rewards seen so far, itself included, centred on 0:
``(#lower + 0.5 * #equal) / n - 0.5``. Accuracies of good children differ by hundredths of a percent; ranks
turn those differences into a signal of constant scale. An affine transform (running mean/std) would not
help: with advantage normalisation it cancels out. With ``window`` (the
preset's ``rank_window``) the percentile is among the last ``window`` first visits only, so late in a search a
child is compared with its recent peers rather than with the poor children of the first rollouts.

``log_rank``: ``-log(1 - percentile)``, minus the log of the fraction of children at least as good. A search is
judged by the best child it finds, not the average one, so the learner should care most about the top: the
best of n children earns about ``log(2n)``, the median one ``log 2``, the worst one 0. This is the log-rank
utility of fitness shaping in evolution strategies (Wierstra et al., "Natural Evolution Strategies", JMLR
2014) without its clip at the median. It pulls the policy towards its best children, so the redraws search their
neighbourhood (how the default was chosen: docs/defaults.md).

``repeated_children: neutral``: a child the search has already evaluated teaches nothing new, so the learner
gets the median child's shaped reward for it (0 under ``rank`` and for raw rewards) and it does not enter the
rank history; the policy is pushed towards children it has not seen. ``redraw`` goes further
(:class:`rlnas.agents.policy.BatchedMultiCategorical` draws again while it samples a child in
:attr:`RewardShaping.seen`), and a repeat that still gets through means the policy has collapsed onto
children already seen: it earns the worst child's shaped reward (-0.5 under ``rank``, 0 under ``log_rank``,
the lowest reward so far without a transform), which spreads the policy again. Left neutral, collapsed
policies stalled constrained searches for thousands of steps.

A virtual step (``info["virtual"]``, :mod:`rlnas.agents.dyna`) is shaped the same way against the real
history but changes nothing: it is not recorded as seen and does not enter the rank history.

Only steps that evaluate a child (their ``info`` has the child's full ``action``) are shaped, so multi-step
episodes (:mod:`rlnas.agents.sequential`) work: their intermediate rewards pass through unchanged.
"""

from __future__ import annotations

import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn


class RewardShaping(VecEnvWrapper):
    """Rank-transform rewards (among all or the latest first visits) and neutralise repeats, for the learner."""

    def __init__(
        self, venv: VecEnv, transform: str = "rank", repeated_children: str = "neutral", window: int | None = None
    ) -> None:
        super().__init__(venv)
        self.transform = transform
        self.repeated_children = repeated_children
        self.window = window
        self.history: list[float] = []  # raw rewards of first visits, in order
        self.seen: set[tuple[int, ...]] = set()  # actions of real children; updated in place (the policy reads it)

    def reset(self) -> np.ndarray:
        return self.venv.reset()

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = self.venv.step_wait()
        shaped = [
            self.shape(np.asarray(info["action"]), float(r), record=not info.get("virtual", False))
            if "action" in info
            else float(r)
            for info, r in zip(infos, rewards, strict=True)
        ]
        return obs, np.asarray(shaped, dtype=np.float32), dones, infos

    def state_dict(self) -> dict:
        """The statistics the shaping has gathered (for checkpoints)."""
        return {"history": list(self.history), "seen": sorted(self.seen)}

    def load_state_dict(self, state: dict) -> None:
        """Restore statistics written by :meth:`state_dict`."""
        self.history = list(state["history"])
        self.seen.clear()
        self.seen.update(tuple(key) for key in state["seen"])

    def shape(self, action: np.ndarray, reward: float, record: bool = True) -> float:
        """The learner's reward for ``reward`` earned by ``action`` (``record``: a real evaluation, remembered)."""
        key = tuple(int(a) for a in np.ravel(action))
        if key in self.seen and self.repeated_children == "neutral":
            return 0.0 if self.transform == "none" else self._utility(0.5)
        if key in self.seen and self.repeated_children == "redraw":
            return min(self.history, default=reward) if self.transform == "none" else self._utility(0.0)
        if record:
            self.seen.add(key)
            self.history.append(reward)
        if self.transform == "none":
            return reward
        history = self.history if record else [*self.history, reward]
        reference = np.asarray(history[-self.window :] if self.window else history)
        lower, equal = np.sum(reference < reward), np.sum(reference == reward)
        return self._utility((lower + 0.5 * equal) / len(reference))

    def _utility(self, percentile: float) -> float:
        """The learner's reward for a child better than ``percentile`` of the reference children."""
        return float(percentile - 0.5 if self.transform == "rank" else -np.log(1 - percentile))
