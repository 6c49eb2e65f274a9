"""AMC-style sequential pruning: decide one group's keep-ratio per step, seeing the layer being decided.

He et al. (AMC, ECCV 2018) embed the layer the agent is about to prune: its index, type, width, kernel, stride,
FLOPs, and how many FLOPs are left to the budget. :class:`SequentialPrune` wraps a
:class:`~rlnas.envs.prune_model.PruneModelEnv` so that an episode is one decision per group; the last decision
evaluates the whole plan through the wrapped environment (its store, cache and ``info``) and earns its reward.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from rlnas.envs.child_net import MAX_TARGET_RATIO
from rlnas.latency.flops import layer_flops

FEATURES = (
    "group index / (groups - 1)",
    "channels / the widest group's channels",
    "root kernel / 7 (at most 1)",
    "root stride / 2 (at most 1)",
    "root is a grouped or depthwise convolution",
    "root is a linear layer",
    "FLOPs of the group's layers / the model's FLOPs",
    "estimated FLOPs of the plan so far (undecided groups whole) / the model's FLOPs",
    "(estimated FLOPs so far - the FLOPs target) / the model's FLOPs (0 without a FLOPs target)",
    "keep-ratio of the previous group (1 at the first)",
    "the wrapped environment's observation (latency target / reference)",
)
"""What each entry of the observation means."""


class SequentialPrune(gym.Wrapper):
    """One group's keep-ratio per step (``Discrete(len(keep_ratios))``); the observation (:data:`FEATURES`)
    embeds the group being decided. The reward is 0 until the last group, then the wrapped step's reward; a plan's
    FLOPs are estimated from the layers each group's outputs feed (inputs ignored), as AMC estimates them."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        inner = env.unwrapped
        self.groups, self.keep_ratios = inner.space.groups, inner.space.keep_ratios
        evaluator = inner.evaluator
        flops = _layer_flops(evaluator.model, evaluator.input_shape)
        self.total = float(evaluator.flops_unpruned)
        self.group_flops = [sum(flops.get(name, 0) for name in g.layers) for g in self.groups]
        reward = inner.preset.reward
        uses_target = reward.cost == "flops" and reward.kind not in ("accuracy", "amc")
        self.budget = reward.target_mflops * 1e6 if uses_target else None
        self.widest = max(g.channels for g in self.groups)
        self.action_space = spaces.Discrete(len(self.keep_ratios))
        self.observation_space = spaces.Box(-1.0, MAX_TARGET_RATIO, shape=(len(FEATURES),), dtype=np.float32)
        self._decisions: list[int] = []
        self._inner_obs = np.ones(1, dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start a plan at the first group."""
        self._inner_obs, info = self.env.reset(seed=seed, options=options)
        self._decisions = []
        return self._observation(), info

    def step(self, action: int):
        """Decide the current group; after the last, evaluate the plan through the wrapped environment."""
        self._decisions.append(int(action))
        if len(self._decisions) < len(self.groups):
            return self._observation(), 0.0, False, False, {}
        self._inner_obs, reward, terminated, truncated, info = self.env.step(np.array(self._decisions))
        observation = self._observation()
        self._decisions = []
        return observation, reward, terminated, truncated, info

    def _observation(self) -> np.ndarray:
        i = min(len(self._decisions), len(self.groups) - 1)
        g = self.groups[i]
        removed = sum(f * (1 - self.keep_ratios[a]) for f, a in zip(self.group_flops, self._decisions, strict=False))
        estimate = (self.total - removed) / self.total
        gap = 0.0 if self.budget is None else float(np.clip(estimate - self.budget / self.total, -1, 1))
        previous = self.keep_ratios[self._decisions[-1]] if self._decisions else 1.0
        features = [
            i / max(1, len(self.groups) - 1), g.channels / self.widest, min(1.0, g.kernel / 7), min(1.0, g.stride / 2),
            float("/dw" in g.kind), float(g.kind == "Linear"), min(1.0, self.group_flops[i] / self.total),
            min(1.0, estimate), gap, previous, float(self._inner_obs[0]),
        ]  # fmt: skip
        return np.asarray(features, dtype=np.float32)


@torch.inference_mode()
def _layer_flops(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, int]:
    """FLOPs of every convolution and linear layer of ``model`` for one example, by module name."""
    found: dict[str, int] = {}
    handles = [
        module.register_forward_hook(lambda m, _i, out, n=name: found.__setitem__(n, layer_flops(m, out)))
        for name, module in model.named_modules()
        if isinstance(module, nn.Conv2d | nn.Linear)
    ]
    try:
        model.eval()(torch.zeros(1, *input_shape))
    finally:
        for handle in handles:
            handle.remove()
    return found
