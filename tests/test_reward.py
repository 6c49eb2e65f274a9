"""Rewards: the MnasNet formula on hand-computed cases, the hard-constraint kind, the failure reward, and children
whose reward cannot be computed (status reward_error)."""

from __future__ import annotations

import dataclasses
import math
import re

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


def test_mnasnet_default_exponents_are_symmetric():
    cfg = RewardConfig(target_ms=2.0, kind="mnasnet")
    assert exponents(cfg) == (-0.07, -0.07)
    assert compute_reward(cfg, 0.5, 4.0, 0, 2.0).reward == pytest.approx(0.5 * math.pow(2.0, -0.07))
    assert compute_reward(cfg, 0.5, 1.0, 0, 2.0).reward == pytest.approx(0.5 * math.pow(0.5, -0.07))


def test_mnasnet_reward_falls_with_latency_and_rises_with_accuracy():
    cfg = RewardConfig(target_ms=1.0, kind="mnasnet")
    rewards = [compute_reward(cfg, 0.9, lat, 0, 1.0).reward for lat in (0.25, 0.5, 1.0, 2.0, 4.0)]
    assert rewards == sorted(rewards, reverse=True)
    assert compute_reward(cfg, 0.95, 2.0, 0, 1.0).reward > compute_reward(cfg, 0.9, 2.0, 0, 1.0).reward


def test_budget_is_the_default_and_pays_accuracy_alone_within_the_target():
    cfg = RewardConfig(target_ms=2.0)
    assert (cfg.kind, cfg.penalty, cfg.slack, cfg.infeasible) == ("budget", 0.03, 0.0, "graded")  # docs/budgets.md
    cheap, at_target = compute_reward(cfg, 0.8, 0.5, 0), compute_reward(cfg, 0.8, 2.0, 0)
    assert cheap.reward == at_target.reward == pytest.approx(0.8)  # nothing for being cheaper than the budget


def test_budget_penalises_the_relative_overshoot():
    cfg = RewardConfig(target_ms=2.0, penalty=0.5)
    assert compute_reward(cfg, 0.9, 3.0, 0).reward == pytest.approx(0.9 - 0.5 * 0.5)
    over = [compute_reward(cfg, 0.9, lat, 0).reward for lat in (2.2, 2.6, 4.0)]
    assert over == sorted(over, reverse=True)  # the further over, the less
    assert compute_reward(cfg, 0.9, 3.0, 0, target_ms=4.0).reward == pytest.approx(0.9)  # the env's target wins


def test_budget_with_flops_uses_the_flops_target():
    cfg = RewardConfig(cost="flops", target_mflops=50.0, penalty=1.0)
    assert compute_reward(cfg, 0.9, latency_ms=9.0, flops=75_000_000).reward == pytest.approx(0.9 - 0.5)


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


def test_linear_reward_subtracts_the_scaled_cost():
    cfg = RewardConfig(kind="linear", target_ms=2.0, linear_lambda=0.2)
    terms = compute_reward(cfg, 0.9, latency_ms=3.0, flops=0)
    assert terms.reward == pytest.approx(0.9 - 0.2 * 3.0 / 2.0)  # 0.6
    assert terms.reward == pytest.approx(0.6)


def test_amc_reward_is_error_times_log_flops():
    cfg = RewardConfig(kind="amc")  # needs no target
    terms = compute_reward(cfg, 0.75, latency_ms=1.0, flops=1_000_000)
    assert terms.reward == pytest.approx(-(1 - 0.75) * math.log(1e6))  # -3.4539
    assert terms.reward == pytest.approx(-3.4539, abs=1e-4)
    better = compute_reward(cfg, 0.80, latency_ms=1.0, flops=1_000_000).reward
    cheaper = compute_reward(cfg, 0.75, latency_ms=1.0, flops=10_000).reward
    assert better > terms.reward and cheaper > terms.reward


def accuracy_minus_cost(accuracy, latency_ms, flops, cost, target):
    """A user-supplied reward, imported by path in the test below."""
    return accuracy - 0.01 * cost - 1e-9 * flops + 0 * latency_ms + 0 * target


def test_custom_reward_is_called_with_the_terms():
    cfg = RewardConfig(kind="custom", target_ms=1.0, function="test_reward:accuracy_minus_cost")
    terms = compute_reward(cfg, 0.9, latency_ms=5.0, flops=10_000_000)
    assert terms.reward == pytest.approx(0.9 - 0.05 - 0.01)


@pytest.mark.parametrize(
    ("reward", "message"),
    [({"kind": "custom", "target_ms": 1.0}, "reward.function"),
     ({"kind": "custom", "target_ms": 1.0, "function": "no_such_module:f"}, "cannot be imported"),
     ({"kind": "linear"}, "missing required key reward.target_ms")],
)  # fmt: skip
def test_bad_reward_settings_are_named(reward, message):
    from rlnas.config import ConfigError, load_env_preset, to_dict

    data = to_dict(load_env_preset("digits"))
    data["reward"] = reward
    with pytest.raises(ConfigError, match=message):
        load_env_preset(data)


# ------------------------------------------------------------------------------------------- reward errors


def returns_nan(**terms):
    return math.nan


def returns_inf(**terms):
    return math.inf


def returns_none(**terms):
    return None


def returns_text(**terms):
    return "0.5"


def raises(**terms):
    raise ValueError("latency\nis missing")


@pytest.mark.parametrize(
    ("function", "reason"),
    [("returns_nan", "gave nan, not a finite number"), ("returns_inf", "gave inf, not a finite number"),
     ("returns_none", "returned None, not a number"), ("returns_text", "returned '0.5', not a number"),
     ("raises", "raised ValueError: latency is missing")],
)  # fmt: skip
def test_a_failing_reward_marks_the_child_and_the_search_goes_on(tmp_path, digits_preset, fake_evaluator, function,
                                                                 reason):  # fmt: skip
    from rlnas.envs.child_net import ChildNetEnv
    from rlnas.store import EvaluationStore

    reward = dataclasses.replace(
        digits_preset.reward, kind="custom", function=f"test_reward:{function}", failure_reward=-0.5
    )
    env = ChildNetEnv(dataclasses.replace(digits_preset, reward=reward), evaluator=fake_evaluator,
                      store_path=tmp_path / "store.sqlite")  # fmt: skip
    try:
        for n, action in enumerate([[0] * 8, [1] * 8, [0] * 8], 1):
            with pytest.warns(RuntimeWarning, match=re.escape(reason)):
                _, value, terminated, _, info = env.step(action)
            assert value == -0.5 and terminated
            assert info["status"] == "reward_error" and info["reason"].endswith(reason)
            assert info["cached"] == (n == 3)
            measured = fake_evaluator.evaluate(env.space.decode(info["action"]))
            assert info["accuracy"] == measured.accuracy > 0 and info["latency_ms"] == measured.latency_ms
    finally:
        env.close()
    records = EvaluationStore(tmp_path / "store.sqlite").records()
    assert [(r["status"], r["reward"]) for r in records] == [("reward_error", -0.5)] * 2
    assert all(r["accuracy"] > 0 and r["flops"] > 0 and "\n" not in r["reason"] for r in records)


def test_a_stored_reward_error_is_scored_again_once_the_reward_works(digits_preset, fake_evaluator):
    """The metrics of a reward_error child are kept, so a fixed reward function scores it from the store."""
    from rlnas.envs.evaluators import EvalResult
    from rlnas.envs.reward import reward_for

    measured = fake_evaluator.evaluate(fake_evaluator.space.decode([0] * 8))
    failed = EvalResult.from_record({**measured.as_dict(), "status": "reward_error", "reason": "was nan"})
    terms, result = reward_for(digits_preset.reward, failed)
    assert result.status == "ok" and result.reason == ""
    assert terms == compute_reward(digits_preset.reward, measured.accuracy, measured.latency_ms, measured.flops)


def test_a_diverged_child_keeps_its_status_and_gets_the_failure_reward(digits_preset):
    from rlnas.envs.evaluators import EvalResult
    from rlnas.envs.reward import reward_for

    diverged = EvalResult("skip@1.0", "diverged", 0.0, 0.0, 0, 0, 10, reason="loss is nan")
    terms, result = reward_for(digits_preset.reward, diverged)
    assert result == diverged and terms.reward == digits_preset.reward.failure_reward


def test_a_builtin_reward_that_cannot_be_computed_is_a_reward_error():
    from rlnas.envs.reward import RewardError

    with pytest.raises(RewardError, match=re.escape("reward.kind mnasnet: 0.0 cannot be raised to a negative power")):
        compute_reward(RewardConfig(target_ms=1.0, kind="mnasnet"), 0.9, latency_ms=0.0, flops=1)


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "nan"])
def test_failure_reward_must_be_finite(value):
    from rlnas.config import ConfigError, load_env_preset

    with pytest.raises(ConfigError, match=r"reward.failure_reward: .* expected a finite number"):
        load_env_preset("digits", [f"reward.failure_reward={value}"])


def test_the_reward_function_is_imported_only_for_kind_custom(tmp_path, monkeypatch):
    """Importing runs the module's code: a function named for another kind is left alone."""
    from rlnas.config import ConfigError, load_env_preset

    marker = tmp_path / "imported"
    (tmp_path / "reward_with_side_effect.py").write_text(
        f"open({str(marker)!r}, 'w').close()\ndef reward(**terms):\n    return 1.0\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    load_env_preset("digits", ["reward.function=reward_with_side_effect:reward"])
    assert not marker.exists()
    load_env_preset("digits", ["reward.kind=custom", "reward.function=reward_with_side_effect:reward"])
    assert marker.exists()
    with pytest.raises(ConfigError, match=r"cannot be imported \(TypeError: .*relative import"):
        load_env_preset("digits", ["reward.kind=custom", "reward.function=.relative:f"])


def test_budget_below_ranks_every_child_over_the_budget_below_every_child_within_it():
    cfg = RewardConfig(target_ms=2.0, infeasible="below", penalty=1.0)
    poor_within = compute_reward(cfg, 0.10, 2.0, 0).reward
    over = {lat: compute_reward(cfg, 0.99, lat, 0).reward for lat in (2.02, 2.2, 4.0)}
    assert poor_within == pytest.approx(0.10)
    assert max(over.values()) < poor_within  # an accurate child just over the budget still ranks last
    assert over[2.02] > over[2.2] > over[4.0]  # among themselves: by overshoot
    assert over[2.2] == pytest.approx(0.99 - 0.1 - 1.0)
    # and by accuracy at equal overshoot, so the learner still sees which over-budget children are better
    assert compute_reward(cfg, 0.95, 2.2, 0).reward > compute_reward(cfg, 0.90, 2.2, 0).reward


def test_budget_graded_lets_an_accurate_child_just_over_the_budget_outrank_a_poor_one_within():
    cfg = RewardConfig(target_ms=2.0, infeasible="graded", penalty=1.0)
    assert compute_reward(cfg, 0.99, 2.02, 0).reward > compute_reward(cfg, 0.10, 2.0, 0).reward


def test_budget_slack_pulls_towards_the_target_from_below():
    cfg = RewardConfig(target_ms=2.0, penalty=1.0, slack=0.1)
    rewards = [compute_reward(cfg, 0.9, lat, 0).reward for lat in (0.5, 1.0, 1.5, 2.0)]
    assert rewards == sorted(rewards) and rewards[-1] == pytest.approx(0.9)  # the nearer the budget, the more
    assert rewards[1] == pytest.approx(0.9 - 0.1 * 0.5)  # half the budget left unused
    assert compute_reward(cfg, 0.9, 3.0, 0).reward == pytest.approx(0.9 - 1.0 * 0.5)  # over it: the penalty


def test_budget_with_equal_slack_and_penalty_is_tunas_absolute_value_reward():
    beta = -0.07
    cfg = RewardConfig(target_ms=2.0, penalty=-beta, slack=-beta)
    for lat in (0.5, 1.0, 2.0, 2.5, 6.0):
        assert compute_reward(cfg, 0.9, lat, 0).reward == pytest.approx(0.9 + beta * abs(lat / 2.0 - 1))


@pytest.mark.parametrize(
    ("override", "key"),
    [("reward.slack=-0.1", "reward.slack"), ("reward.infeasible=ignore", "reward.infeasible"),
     ("reward.penalty=0", "reward.penalty")],
)  # fmt: skip
def test_bad_budget_settings_are_named(override, key):
    from rlnas.config import ConfigError, load_env_preset

    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_env_preset("digits", [override])
