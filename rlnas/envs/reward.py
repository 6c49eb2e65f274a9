"""Rewards that trade accuracy against a cost: measured latency (ms) or FLOPs (MFLOPs).

``budget`` (the default): a latency or FLOPs target T is a budget. With ``r = cost / T``, a child within it
(``r <= 1``) earns ``acc - slack * (1 - r)`` and one over it ``acc - penalty * (r - 1)``, and 1 less again with
``infeasible: below`` (then every child over the budget earns less than every child within it, as accuracies
are at most 1). The controller learns from children over the budget and from how far over they are; ``slack``
pulls the search towards the budget from below, where the most accurate child within it usually is (accuracy
grows with cost). ``slack = 0`` pays the accuracy alone within the budget; ``slack = penalty = -beta`` is
TuNAS's absolute-value reward ``acc + beta * |r - 1|`` (Bender et al., 2020).
``mnasnet`` (Tan et al., 2019): ``acc * (cost / T) ** w`` with ``w = alpha`` when
``cost <= T`` and ``w = beta`` otherwise; its soft setting is alpha = beta = -0.07. ``hard`` is the paper's
hard-constraint setting alpha = 0, beta = -1 (``alpha``/``beta`` in the preset are ignored). ``linear``:
``acc - linear_lambda * cost / T``. ``amc`` (He et al., 2018, AMC's resource-constrained reward):
``-(1 - acc) * ln(FLOPs)``, whatever the cost setting. ``accuracy`` is the accuracy alone (the unconstrained
setting of tabular benchmarks). ``custom``: the function at ``reward.function`` (``"package.module:name"``),
called with keyword arguments ``accuracy, latency_ms, flops, cost, target`` and returning the reward.
``reward.cost`` picks the cost: ``latency`` (target ``reward.target_ms``, which ``reset(options=...)`` can
change) or ``flops`` (target ``reward.target_mflops``).
A child whose training diverged gets ``failure_reward``.
"""

from __future__ import annotations

import functools
import importlib
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

from rlnas.config import RewardConfig


@dataclass(frozen=True)
class RewardTerms:
    """The reward and the terms it was computed from (logged to TensorBoard and the store).

    ``cost`` and ``target`` are in the reward's cost unit: ms for ``latency``, MFLOPs for ``flops``.
    """

    reward: float
    accuracy: float
    cost: float
    target: float
    exponent: float

    def as_dict(self) -> dict[str, float]:
        """Plain floats, for ``info`` and logs."""
        return asdict(self)


def exponents(cfg: RewardConfig) -> tuple[float, float]:
    """``(alpha, beta)`` for the configured reward kind."""
    return {"hard": (0.0, -1.0), "accuracy": (0.0, 0.0)}.get(cfg.kind, (cfg.alpha, cfg.beta))


def mnasnet_reward(accuracy: float, cost: float, target: float, alpha: float, beta: float) -> RewardTerms:
    """``accuracy * (cost / target) ** w``, ``w = alpha`` if ``cost <= target`` else ``beta``."""
    w = alpha if cost <= target else beta
    return RewardTerms(accuracy * (cost / target) ** w, accuracy, cost, target, w)


def budget_reward(
    accuracy: float, cost: float, target: float, penalty: float, slack: float = 0.0, below: bool = False
) -> RewardTerms:
    """``accuracy - slack * (1 - cost / target)`` within the budget (``cost <= target``); ``accuracy - penalty *
    (cost / target - 1)`` over it, minus 1 more when ``below`` (so it ranks below every child within it)."""
    ratio = cost / target
    if ratio <= 1.0:
        return RewardTerms(accuracy - slack * (1.0 - ratio), accuracy, cost, target, 0.0)
    return RewardTerms(accuracy - penalty * (ratio - 1.0) - float(below), accuracy, cost, target, 0.0)


def child_cost(cfg: RewardConfig, latency_ms: float, flops: int) -> float:
    """The child's cost in the reward's unit."""
    return flops / 1e6 if cfg.cost == "flops" else latency_ms


@functools.cache
def import_reward_function(path: str) -> Callable[..., float]:
    """The function named by ``"package.module:name"``."""
    module, sep, name = path.partition(":")
    if not sep or not module or not name:
        raise ValueError(f"{path!r} is not of the form 'package.module:function'")
    function = getattr(importlib.import_module(module), name)
    if not callable(function):
        raise ValueError(f"{path!r} is not callable")
    return function


def compute_reward(
    cfg: RewardConfig, accuracy: float, latency_ms: float, flops: int, target_ms: float | None = None
) -> RewardTerms:
    """The reward for a child under ``cfg``; ``target_ms`` overrides the preset's latency target."""
    cost = child_cost(cfg, latency_ms, flops)
    if cfg.kind == "accuracy":
        return RewardTerms(accuracy, accuracy, cost, 0.0, 0.0)
    if cfg.kind == "amc":
        return RewardTerms(-(1.0 - accuracy) * math.log(max(flops, 1)), accuracy, cost, 0.0, 0.0)
    target = _target(cfg, target_ms)
    if cfg.kind == "linear":
        return RewardTerms(accuracy - cfg.linear_lambda * cost / target, accuracy, cost, target, 0.0)
    if cfg.kind == "budget":
        return budget_reward(accuracy, cost, target, cfg.penalty, cfg.slack, cfg.infeasible == "below")
    if cfg.kind == "custom":
        function = import_reward_function(cfg.function)
        value = function(accuracy=accuracy, latency_ms=latency_ms, flops=flops, cost=cost, target=target)
        return RewardTerms(float(value), accuracy, cost, target, 0.0)
    return mnasnet_reward(accuracy, cost, target, *exponents(cfg))


def failure_terms(cfg: RewardConfig, target_ms: float | None = None) -> RewardTerms:
    """The documented penalty for a child that could not be trained."""
    return RewardTerms(cfg.failure_reward, 0.0, 0.0, _target(cfg, target_ms) or 0.0, 0.0)


def _target(cfg: RewardConfig, target_ms: float | None) -> float | None:
    """The target in the cost's unit; ``target_ms`` (from the environment) overrides the preset's latency target."""
    return cfg.target_mflops if cfg.cost == "flops" else (target_ms or cfg.target_ms)
