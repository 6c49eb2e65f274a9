"""Soften a converged PPO policy when its search stops improving (``stall_children`` in the agent preset).

A joint policy with a top-heavy reward transform converges within tens of children; when it converges on the
wrong basin, the redraws only search that basin's neighbours and the rest of the budget is spent there.
:class:`StallTempering` watches the best reward of the evaluated children and, after ``patience`` new children
without a better one, multiplies the policy's action logits by ``factor`` (scaling the action head's weights and
biases), which keeps the policy's preferences but raises its temperature, so the next rollouts sample further
from the mode and the learner can leave the basin if something better lies outside it. The count is not
checkpointed: a resumed search starts counting again (tempering then comes later, never twice as often).
"""

from __future__ import annotations

import math

import torch
from stable_baselines3.common.callbacks import BaseCallback


class StallTempering(BaseCallback):
    """Multiply the action logits by ``factor`` after ``patience`` evaluated children without a better reward."""

    def __init__(self, patience: int, factor: float) -> None:
        super().__init__()
        self.patience, self.factor = patience, factor
        self.best, self.since_best = -math.inf, 0

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            if "arch" not in info or info["cached"]:
                continue
            if info["reward"] > self.best:
                self.best, self.since_best = info["reward"], 0
            else:
                self.since_best += 1
        return True

    def _on_rollout_end(self) -> None:
        if self.since_best >= self.patience:
            head = self.model.policy.action_net
            with torch.no_grad():
                head.weight.mul_(self.factor)
                head.bias.mul_(self.factor)
            self.since_best = 0
            self.logger.record("search/tempered", 1)
