"""Rewards that trade accuracy against a cost: measured latency (ms) or FLOPs (MFLOPs).

``budget`` (the default): a latency or FLOPs target T is a budget. With ``r = cost / T``, a child within it
(``r <= 1``) earns ``acc - slack * (1 - r)`` and one over it ``acc - penalty * (r - 1)``, and 1 less again with
``infeasible: below`` (then every child over the budget earns less than every child within it, as accuracies
are at most 1). The controller learns from children over the budget and from how far over they are; ``slack``
pulls the search towards the budget from below, where the most accurate child within it usually is (accuracy
grows with cost). ``slack = 0`` pays the accuracy alone within the budget; ``slack = penalty = -beta`` is
TuNAS's absolute-value reward ``acc + beta * |r - 1|`` (Bender et al., 2020). With ``multiplier: adaptive``
``penalty`` is a Lagrange multiplier adapted during the search by dual ascent (:func:`multiplier_step`, as in
constrained RL, e.g. RCPO, Tessler et al., 2019): it grows while more than ``over_share`` of the children are
over the budget and shrinks while fewer are (:mod:`rlnas.envs.multiplier` keeps its state).
``mnasnet`` (Tan et al., 2019): ``acc * (cost / T) ** w`` with ``w = alpha`` when
``cost <= T`` and ``w = beta`` otherwise; its soft setting is alpha = beta = -0.07. ``hard`` is the paper's
hard-constraint setting alpha = 0, beta = -1 (``alpha``/``beta`` in the preset are ignored). ``linear``:
``acc - linear_lambda * cost / T``. ``amc`` (He et al., 2018, AMC's resource-constrained reward):
``-(1 - acc) * ln(FLOPs)``, whatever the cost setting. ``accuracy`` is the accuracy alone (the unconstrained
setting of tabular benchmarks). ``custom``: the function at ``reward.function`` (``"package.module:name"``),
called with keyword arguments ``accuracy, latency_ms, flops, cost, target`` and returning the reward.
``reward.cost`` picks the cost: ``latency`` (target ``reward.target_ms``, which ``reset(options=...)`` can
change) or ``flops`` (target ``reward.target_mflops``).
A child whose training diverged gets ``failure_reward``; so does a child whose reward cannot be computed (the
custom function raised, or a reward is not a finite number): its status is then ``reward_error``, its metrics kept.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass
from typing import Any

from rlnas.config import RewardConfig
from rlnas.envs.evaluators import EvalResult
from rlnas.reward_function import import_reward_function


class RewardError(ValueError):
    """A child's reward cannot be computed: the custom function raised or gave no finite number."""


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


def multiplier_step(cfg: RewardConfig, value: float, over: bool) -> float:
    """The adaptive multiplier after one more child (``over``: its cost exceeded the target): one dual-ascent
    step on the constraint "at most ``over_share`` of the children over the budget", floored at 0."""
    return max(0.0, value + cfg.multiplier_lr * (float(over) - cfg.over_share))


def child_cost(cfg: RewardConfig, latency_ms: float, flops: int) -> float:
    """The child's cost in the reward's unit."""
    return flops / 1e6 if cfg.cost == "flops" else latency_ms


def compute_reward(
    cfg: RewardConfig, accuracy: float, latency_ms: float, flops: int, target_ms: float | None = None
) -> RewardTerms:
    """The reward for a child under ``cfg``; ``target_ms`` overrides the preset's latency target.

    Raises :class:`RewardError` (one line, naming the cause) when the reward is not a finite number.
    """
    try:
        terms = _terms(cfg, accuracy, latency_ms, flops, target_ms)
    except ArithmeticError as err:
        raise RewardError(f"reward.kind {cfg.kind}: {_one_line(err)}") from err
    if not math.isfinite(terms.reward):
        source = f"reward.function {cfg.function}" if cfg.kind == "custom" else f"reward.kind {cfg.kind}"
        raise RewardError(f"{source} gave {terms.reward}, not a finite number")
    return terms


def reward_for(cfg: RewardConfig, result: EvalResult, target_ms: float | None = None) -> tuple[RewardTerms, EvalResult]:
    """The reward terms of an evaluated child, and its result with status ``reward_error`` if they failed.

    A diverged or failed child, or one whose reward cannot be computed, gets ``cfg.failure_reward``; the latter
    keeps its measured accuracy and cost, and the reason.
    """
    if result.status in ("diverged", "failed"):
        return failure_terms(cfg, target_ms), result
    try:
        terms = compute_reward(cfg, result.accuracy, result.latency_ms, result.flops, target_ms)
    except RewardError as err:
        cost = child_cost(cfg, result.latency_ms, result.flops)
        terms = dataclasses.replace(failure_terms(cfg, target_ms), accuracy=result.accuracy, cost=cost)
        return terms, dataclasses.replace(result, status="reward_error", reason=str(err))
    rescored = result.status == "reward_error"  # stored as a reward error, scored again now the reward works
    return terms, dataclasses.replace(result, status="ok", reason="") if rescored else result


def _terms(cfg: RewardConfig, accuracy: float, latency_ms: float, flops: int, target_ms: float | None) -> RewardTerms:
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
        return RewardTerms(_custom_reward(cfg.function, accuracy, latency_ms, flops, cost, target), accuracy, cost,
                           target, 0.0)  # fmt: skip
    return mnasnet_reward(accuracy, cost, target, *exponents(cfg))


def _custom_reward(path: str, accuracy: float, latency_ms: float, flops: int, cost: float, target: float) -> float:
    """The user's function's reward as a float; :class:`RewardError` if it raises or returns no real number."""
    function = import_reward_function(path)
    try:
        value: Any = function(accuracy=accuracy, latency_ms=latency_ms, flops=flops, cost=cost, target=target)
    except Exception as err:  # the user's code: any failure is this child's reward error, not the search's end
        raise RewardError(f"reward.function {path} raised {type(err).__name__}: {_one_line(err)}") from err
    try:
        if isinstance(value, str | bytes | bool):
            raise TypeError
        return float(value)
    except (TypeError, ValueError):
        raise RewardError(f"reward.function {path} returned {_one_line(repr(value))}, not a number") from None


def _one_line(text: object, limit: int = 200) -> str:
    """``text`` on one line, at most ``limit`` characters (for reasons stored with a child)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def failure_terms(cfg: RewardConfig, target_ms: float | None = None) -> RewardTerms:
    """The documented penalty for a child that could not be trained."""
    return RewardTerms(cfg.failure_reward, 0.0, 0.0, _target(cfg, target_ms) or 0.0, 0.0)


def _target(cfg: RewardConfig, target_ms: float | None) -> float | None:
    """The target in the cost's unit; ``target_ms`` (from the environment) overrides the preset's latency target."""
    return cfg.target_mflops if cfg.cost == "flops" else (target_ms or cfg.target_ms)
