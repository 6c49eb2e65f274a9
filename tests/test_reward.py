"""Rewards: the MnasNet formula on hand-computed cases, the hard-constraint kind, and the failure reward."""

from __future__ import annotations

import math

import pytest

from rlnas.config import RewardConfig
from rlnas.envs.reward import compute_reward, exponents, failure_terms, mnasnet_reward


def test_slower_than_target_uses_beta():
    terms = mnasnet_reward(0.9, 2.0, 1.0, alpha=-0.5, beta=-0.07)
    assert terms.reward == pytest.approx(0.9 * math.pow(2.0, -0.07))
    assert terms.reward == pytest.approx(0.8574, abs=1e-4)  # 0.9 / 2**0.07 = 0.9 / 1.04972
    assert terms.exponent == -0.07
    assert (terms.accuracy, terms.cost, terms.target) == (0.9, 2.0, 1.0)


def test_faster_than_target_uses_alpha():
    terms = mnasnet_reward(0.8, 0.5, 2.0, alpha=-0.2, beta=-1.0)
    assert terms.reward == pytest.approx(0.8 * math.pow(0.25, -0.2))
    assert terms.reward > 0.8  # being faster earns a bonus when alpha < 0
    assert terms.exponent == -0.2


def test_at_the_target_the_reward_is_the_accuracy_and_alpha_applies():
    terms = mnasnet_reward(0.7, 1.5, 1.5, alpha=-0.3, beta=-0.9)
    assert terms.reward == pytest.approx(0.7)
    assert terms.exponent == -0.3


def test_compute_reward_follows_the_config():
    cfg = RewardConfig(target_ms=1.0, kind="mnasnet", alpha=-0.1, beta=-0.5)
    assert compute_reward(cfg, 0.9, 0.5, 0, 1.0).reward == pytest.approx(0.9 * math.pow(0.5, -0.1))
    assert compute_reward(cfg, 0.9, 4.0, 0, 1.0).reward == pytest.approx(0.9 * math.pow(4.0, -0.5))
    # the target passed in (e.g. from reset options) is used, not the config's
    assert compute_reward(cfg, 0.9, 4.0, 0, 8.0).reward == pytest.approx(0.9 * math.pow(0.5, -0.1))


def test_hard_kind_ignores_the_preset_exponents():
    cfg = RewardConfig(target_ms=1.0, kind="hard", alpha=-0.3, beta=-0.3)
    assert exponents(cfg) == (0.0, -1.0)
    fast = compute_reward(cfg, 0.9, 0.25, 0, 1.0)
    assert fast.reward == pytest.approx(0.9)  # no bonus for being faster
    assert fast.exponent == 0.0
    slow = compute_reward(cfg, 0.9, 3.0, 0, 1.0)
    assert slow.reward == pytest.approx(0.3)  # 0.9 * (3 / 1) ** -1
    assert slow.exponent == -1.0


def test_soft_default_is_symmetric():
    cfg = RewardConfig(target_ms=2.0)
    assert exponents(cfg) == (-0.07, -0.07)
    assert compute_reward(cfg, 0.5, 4.0, 0, 2.0).reward == pytest.approx(0.5 * math.pow(2.0, -0.07))
    assert compute_reward(cfg, 0.5, 1.0, 0, 2.0).reward == pytest.approx(0.5 * math.pow(0.5, -0.07))


def test_reward_falls_with_latency_and_rises_with_accuracy():
    cfg = RewardConfig(target_ms=1.0)
    rewards = [compute_reward(cfg, 0.9, lat, 0, 1.0).reward for lat in (0.25, 0.5, 1.0, 2.0, 4.0)]
    assert rewards == sorted(rewards, reverse=True)
    assert compute_reward(cfg, 0.95, 2.0, 0, 1.0).reward > compute_reward(cfg, 0.9, 2.0, 0, 1.0).reward


@pytest.mark.parametrize("failure_reward", [0.0, -1.0, 0.25])
def test_failure_terms_give_the_failure_reward(failure_reward):
    cfg = RewardConfig(target_ms=1.0, failure_reward=failure_reward)
    terms = failure_terms(cfg, 3.0)
    assert terms.reward == failure_reward
    assert terms.target == 3.0
    assert terms.accuracy == 0.0
    assert set(terms.as_dict()) == {"reward", "accuracy", "cost", "target", "exponent"}


def test_flops_cost_uses_mflops_and_its_own_target():
    cfg = RewardConfig(kind="mnasnet", cost="flops", target_mflops=50.0, alpha=-0.1, beta=-0.5)
    slow = compute_reward(cfg, 0.9, latency_ms=123.0, flops=100_000_000, target_ms=7.0)  # latency is ignored
    assert (slow.cost, slow.target, slow.exponent) == (100.0, 50.0, -0.5)
    assert slow.reward == pytest.approx(0.9 * 2.0**-0.5)
    fast = compute_reward(cfg, 0.9, latency_ms=0.0, flops=25_000_000)
    assert fast.reward == pytest.approx(0.9 * 0.5**-0.1) and fast.exponent == -0.1


def test_accuracy_kind_is_the_accuracy_alone():
    cfg = RewardConfig(kind="accuracy", cost="flops")
    terms = compute_reward(cfg, 0.93, latency_ms=0.0, flops=85_000_000)
    assert terms.reward == 0.93 and terms.exponent == 0.0 and terms.cost == 85.0
    assert exponents(cfg) == (0.0, 0.0)
