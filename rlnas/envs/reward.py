"""Rewards that trade accuracy against latency.

``mnasnet`` (Tan et al., 2019): ``acc * (lat / T) ** w`` with ``w = alpha`` when ``lat <= T`` and
``w = beta`` otherwise; the soft default is alpha = beta = -0.07. ``hard`` is the paper's hard-constraint
setting alpha = 0, beta = -1: no bonus for being faster than T, a steep penalty for being slower
(``alpha``/``beta`` in the preset are ignored). A child whose training diverged gets ``failure_reward``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from rlnas.config import RewardConfig


@dataclass(frozen=True)
class RewardTerms:
    """The reward and the terms it was computed from (logged to TensorBoard and the store)."""

    reward: float
    accuracy: float
    latency_ms: float
    target_ms: float
    exponent: float

    def as_dict(self) -> dict[str, float]:
        """Plain floats, for ``info`` and logs."""
        return asdict(self)


def exponents(cfg: RewardConfig) -> tuple[float, float]:
    """``(alpha, beta)`` for the configured reward kind."""
    return (0.0, -1.0) if cfg.kind == "hard" else (cfg.alpha, cfg.beta)


def mnasnet_reward(accuracy: float, latency_ms: float, target_ms: float, alpha: float, beta: float) -> RewardTerms:
    """``accuracy * (latency / target) ** w``, ``w = alpha`` if ``latency <= target`` else ``beta``."""
    w = alpha if latency_ms <= target_ms else beta
    return RewardTerms(accuracy * (latency_ms / target_ms) ** w, accuracy, latency_ms, target_ms, w)


def compute_reward(cfg: RewardConfig, accuracy: float, latency_ms: float, target_ms: float) -> RewardTerms:
    """The reward for a child under ``cfg`` with latency target ``target_ms``."""
    return mnasnet_reward(accuracy, latency_ms, target_ms, *exponents(cfg))


def failure_terms(cfg: RewardConfig, target_ms: float) -> RewardTerms:
    """The documented penalty for a child that could not be trained."""
    return RewardTerms(cfg.failure_reward, 0.0, 0.0, target_ms, 0.0)
