"""The adaptive multiplier of the budget reward (``reward.multiplier: adaptive``), derived from the run's store.

The multiplier for the next child is folded, by :func:`rlnas.envs.reward.multiplier_step`, over the first visits
the store holds, in order. Being a function of the store, it needs no state of its own in checkpoints: a resumed
search, whose store keeps the steps up to its checkpoint, starts again from the multiplier it had there, and
parallel environments sharing one store use the same multiplier.
"""

from __future__ import annotations

from rlnas.config import RewardConfig
from rlnas.envs.reward import child_cost, multiplier_step
from rlnas.store import EvaluationStore


class AdaptiveMultiplier:
    """The multiplier on the relative overshoot for the next child; starts at ``reward.penalty``."""

    def __init__(self, cfg: RewardConfig) -> None:
        self.cfg = cfg
        self._restart()

    def _restart(self) -> None:
        self.value, self._last_step, self._steps = self.cfg.penalty, 0, 0

    def current(self, store: EvaluationStore) -> float:
        """The multiplier after every first visit ``store`` holds (only the steps new since the last call are read)."""
        if store.step_count() < self._steps:  # steps were dropped (a resume from a checkpoint): fold them again
            self._restart()
        for step in store.steps(after=self._last_step):
            self._last_step, self._steps = step["id"], self._steps + 1
            if not step["cached"] and step["status"] == "ok":
                over = child_cost(self.cfg, step["latency_ms"], step["flops"]) > step["target"]
                self.value = multiplier_step(self.cfg, self.value, over)
        return self.value
