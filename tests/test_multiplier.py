"""The budget reward's adaptive Lagrange multiplier (``reward.multiplier: adaptive``)."""

from __future__ import annotations

import csv
import dataclasses

import numpy as np
import pytest
from conftest import FakeEvaluator
from test_resume import Crash, CrashingEvaluator

from rlnas.config import ConfigError, RewardConfig, load_agent_preset, load_env_preset
from rlnas.envs.child_net import ChildNetEnv
from rlnas.envs.evaluators import space_for
from rlnas.envs.multiplier import AdaptiveMultiplier
from rlnas.envs.reward import multiplier_step
from rlnas.search import resume_search, run_search
from rlnas.store import EvaluationStore

ADAPTIVE = {"multiplier": "adaptive", "multiplier_lr": 0.05, "over_share": 0.25, "target_ms": 0.23}
"""The digits space's fake latencies: about half its random children are over 0.23 ms."""


@pytest.fixture
def adaptive_preset(digits_preset):
    return dataclasses.replace(digits_preset, reward=dataclasses.replace(digits_preset.reward, **ADAPTIVE))


def test_the_multiplier_rises_while_children_overshoot_falls_while_they_do_not_and_stays_non_negative():
    cfg = RewardConfig(target_ms=1.0, penalty=0.1, multiplier="adaptive", multiplier_lr=0.1, over_share=0.25)
    assert multiplier_step(cfg, 0.1, over=True) == pytest.approx(0.1 + 0.1 * 0.75)
    assert multiplier_step(cfg, 0.1, over=False) == pytest.approx(0.1 - 0.1 * 0.25)
    assert multiplier_step(cfg, 0.01, over=False) == 0.0
    value = 0.1
    for over in [True, False, False, False] * 5:  # exactly the allowed share over: back where it started
        value = multiplier_step(cfg, value, over)
    assert value == pytest.approx(0.1)


def fold(cfg: RewardConfig, overs: list[bool]) -> float:
    value = cfg.penalty
    for over in overs:
        value = multiplier_step(cfg, value, over)
    return value


def test_the_env_prices_each_child_with_the_multiplier_of_the_first_visits_before_it(adaptive_preset):
    cfg = adaptive_preset.reward
    env = ChildNetEnv(adaptive_preset, evaluator=FakeEvaluator(space_for(adaptive_preset)))
    rng = np.random.default_rng(0)
    actions = [rng.integers(0, env.space.nvec) for _ in range(12)]
    actions.insert(6, actions[2])  # a repeat: answered from the store, it does not move the multiplier
    overs, multipliers = [], set()
    for action in actions:
        _, reward, _, _, info = env.step(action)
        assert info["multiplier"] == pytest.approx(fold(cfg, overs))
        ratio = info["cost"] / info["target"]
        assert reward == pytest.approx(info["accuracy"] - info["multiplier"] * max(0.0, ratio - 1))
        if not info["cached"]:
            overs.append(ratio > 1)
        multipliers.add(round(info["multiplier"], 9))
    assert 0 < sum(overs) < len(overs) and len(multipliers) > 5  # both kinds of children; the multiplier moved
    # recomputed from the store alone (a resumed search, another environment sharing the store): the same value
    assert AdaptiveMultiplier(cfg).current(env.store) == pytest.approx(fold(cfg, overs))
    env.store.truncate_steps(4)  # a resume from a checkpoint taken after 4 steps
    assert env._multiplier.current(env.store) == pytest.approx(fold(cfg, overs[:4]))
    env.close()


def test_the_adaptive_multiplier_is_the_default_and_fixed_or_other_kinds_leave_the_penalty_alone(digits_preset):
    reward = digits_preset.reward
    assert (reward.multiplier, reward.multiplier_lr, reward.over_share) == ("adaptive", 0.003, 0.25)  # budgets.md
    space = space_for(digits_preset)
    for override in ("fixed", "mnasnet"):
        changed = {"multiplier": "fixed"} if override == "fixed" else {"kind": "mnasnet", "target_ms": 0.23}
        preset = dataclasses.replace(digits_preset, reward=dataclasses.replace(reward, **changed))
        env = ChildNetEnv(preset, evaluator=FakeEvaluator(space))
        for _ in range(6):
            _, r, _, _, info = env.step(env.action_space.sample())
            assert "multiplier" not in info
            if override == "fixed":  # the preset's penalty, however many children overshot before
                over = max(0.0, info["cost"] / info["target"] - 1)
                assert r == pytest.approx(info["accuracy"] - reward.penalty * over)
        env.close()


@pytest.mark.parametrize(
    ("override", "key"),
    [("reward.over_share=1", "reward.over_share"), ("reward.multiplier_lr=0", "reward.multiplier_lr"),
     ("reward.multiplier=dual", "reward.multiplier")],
)  # fmt: skip
def test_bad_multiplier_settings_are_named(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_env_preset("digits", ["reward.multiplier=adaptive", override])


def rewards_of(run_dir) -> list[tuple[str, float]]:
    store = EvaluationStore(run_dir / "evaluations.sqlite")
    try:
        return [(s["arch"], round(s["reward"], 9)) for s in store.steps()]
    finally:
        store.close()


def test_a_resumed_search_continues_with_the_multiplier_it_had(tmp_path, adaptive_preset):
    agent = load_agent_preset(
        {"name": "fast", "n_steps": 4, "batch_size": 4, "n_epochs": 2, "virtual_rollouts": 0}
    )  # fmt: skip
    space = space_for(adaptive_preset)
    with pytest.raises(Crash):
        run_search(adaptive_preset, agent, evaluations=10, run_name="crashed", runs_dir=tmp_path,
                   evaluator=CrashingEvaluator(space, limit=6), progress_bar=False)  # fmt: skip
    resume_search(tmp_path / "crashed", evaluator=FakeEvaluator(space), progress_bar=False)
    run_search(adaptive_preset, agent, evaluations=10, run_name="whole", runs_dir=tmp_path,
               evaluator=FakeEvaluator(space), progress_bar=False)  # fmt: skip
    resumed, whole = rewards_of(tmp_path / "crashed"), rewards_of(tmp_path / "whole")
    assert len(whole) >= 10 and resumed == whole  # same children, each paid with the same multiplier
    with open(tmp_path / "whole" / "progress.csv") as rows:
        logged = [row["search/multiplier"] for row in csv.DictReader(rows) if row["search/multiplier"]]
    assert len(logged) == 10 and len(set(logged)) > 1  # TensorBoard and progress.csv follow it
