"""The evaluation cache: a child already in the store is not evaluated again, in one env or several."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest

from rlnas.envs.child_net import ChildNetEnv
from rlnas.envs.evaluators import EvalResult, ScratchEvaluator, cache_key
from rlnas.search import run_search
from rlnas.space import Arch
from rlnas.store import EvaluationStore

ARCH = "conv3x3@0.5|skip@1.0|sep3x3@1.0|mbconv3_k3@0.5"
OTHER = "maxpool3x3@1.0|skip@1.0|sep3x3@1.0|mbconv3_k3@0.5"


def action(env: ChildNetEnv, text: str):
    return env.space.encode(env.space.parse(text))


def test_a_repeated_child_is_answered_from_the_store(tmp_path, digits_preset, fake_evaluator):
    env = ChildNetEnv(digits_preset, evaluator=fake_evaluator, store_path=tmp_path / "s.sqlite")
    _, first_reward, _, _, first = env.step(action(env, ARCH))
    _, again_reward, _, _, again = env.step(action(env, ARCH))
    assert fake_evaluator.calls == 1
    assert not first["cached"] and again["cached"]
    assert again["store_id"] == first["store_id"] and again["evaluations"] == 1
    assert EvalResult.from_record(again) == EvalResult.from_record(first)
    assert again_reward == first_reward

    tight = first["cost"] / 2  # the reward follows the current target: half the child's latency puts it over budget
    env.reset(options={"target_latency_ms": tight})
    _, tight_reward, _, _, again_tight = env.step(action(env, ARCH))
    assert again_tight["cached"] and fake_evaluator.calls == 1
    assert tight_reward < first_reward and again_tight["target"] == tight
    steps = env.store.steps()
    assert [s["cached"] for s in steps] == [False, True, True]
    assert len(env.store.records()) == 1
    env.close()


def test_envs_sharing_a_store_share_the_cache(tmp_path, digits_preset, fake_evaluator):
    other_evaluator = type(fake_evaluator)(fake_evaluator.space)
    one = ChildNetEnv(digits_preset, evaluator=fake_evaluator, store_path=tmp_path / "s.sqlite")
    two = ChildNetEnv(digits_preset, evaluator=other_evaluator, store_path=tmp_path / "s.sqlite")
    one.step(action(one, ARCH))
    _, _, _, _, info = two.step(action(two, ARCH))
    assert info["cached"] and other_evaluator.calls == 0
    one.close(), two.close()


def test_the_key_covers_space_architecture_and_evaluator_settings(digits_preset):
    evaluator = ScratchEvaluator(digits_preset)
    longer = ScratchEvaluator(
        dataclasses.replace(digits_preset, train=dataclasses.replace(digits_preset.train, steps=21))
    )
    fingerprint = evaluator.space.fingerprint
    key = cache_key(fingerprint, ARCH, evaluator.settings)
    assert key == cache_key(fingerprint, ARCH, ScratchEvaluator(digits_preset).settings)
    assert key != cache_key(fingerprint, OTHER, evaluator.settings)
    assert key != cache_key(fingerprint, ARCH, longer.settings)
    assert key != cache_key("another-space", ARCH, evaluator.settings)


def test_the_budget_counts_distinct_children(tmp_path, digits_preset, fake_evaluator):
    env = ChildNetEnv(digits_preset, evaluator=fake_evaluator, max_evaluations=1)
    env.step(action(env, ARCH))
    _, reward, terminated, truncated, info = env.step(action(env, OTHER))
    assert info["budget_exhausted"] and truncated and not terminated and reward == 0.0
    assert fake_evaluator.calls == 1
    _, _, terminated, _, info = env.step(action(env, ARCH))  # a stored child is still answered
    assert terminated and info["cached"]
    env.close()


def test_claims_keep_parallel_envs_from_evaluating_one_child_twice(tmp_path):
    store = EvaluationStore(tmp_path / "s.sqlite")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    store._db.execute("INSERT INTO claims (key, pid, created) VALUES ('busy', ?, 0)", (os.getppid(),))
    store._db.execute("INSERT INTO claims (key, pid, created) VALUES ('stale', ?, 0)", (dead.pid,))
    assert store.claim("busy") == "busy"  # a live process is evaluating it: wait for its record
    assert store.claim("stale") == "claimed"  # its claimant died: take it over
    assert store.claim("new", budget=2) == "exhausted"  # 'busy' and 'stale' are under way: a third exceeds 2
    assert store.claim("new", budget=3) == "claimed"
    store.release_claims()
    assert store.claim("busy") == "claimed"
    store.close()


def test_a_search_with_two_parallel_envs_records_every_evaluation_once(tmp_path, synthetic_table_preset):
    result = run_search(
        synthetic_table_preset, "ppo", evaluations=20, n_envs=2, runs_dir=tmp_path, run_name="par", progress_bar=False
    )
    store = EvaluationStore(result.run_dir / "evaluations.sqlite")
    records, steps = store.records(), store.steps()
    assert result.evaluations == len(records) == 20
    assert len({r["arch"] for r in records}) == 20
    assert {s["evaluation"] for s in steps} == {r["id"] for r in records}  # every evaluation was reached by a step
    assert sum(not s["cached"] for s in steps) == 20  # each child evaluated exactly once
    store.close()


@pytest.mark.parametrize(("kwargs", "match"), [({"n_envs": 0}, "at least 1"), ({"max_steps": 3}, "max_steps")])
def test_bad_budgets_are_refused(tmp_path, synthetic_table_preset, kwargs, match):
    with pytest.raises(ValueError, match=match):
        run_search(synthetic_table_preset, "ppo", evaluations=5, runs_dir=tmp_path, progress_bar=False, **kwargs)


def test_parallel_envs_are_for_ppo(tmp_path, synthetic_table_preset):
    with pytest.raises(ValueError, match="for PPO searches"):
        run_search(synthetic_table_preset, "random", evaluations=5, n_envs=2, runs_dir=tmp_path, progress_bar=False)


def test_children_that_build_the_same_network_share_one_evaluation(tmp_path, digits_preset, fake_evaluator):
    env = ChildNetEnv(digits_preset, evaluator=fake_evaluator, store_path=tmp_path / "s.sqlite")
    identity = next(s.index for s in env.space.slots if s.keeps_shape)
    arch = env.space.uniform("conv3x3", 0.5)
    ops, keeps = list(arch.ops), list(arch.keeps)
    ops[identity], keeps[identity] = "skip", 1.0
    _, _, _, _, first = env.step(env.space.encode(Arch(tuple(ops), tuple(keeps))))
    keeps[identity] = 0.25  # an identity prunes nothing: the same network
    _, _, _, _, again = env.step(env.space.encode(Arch(tuple(ops), tuple(keeps))))
    assert fake_evaluator.calls == 1 and again["cached"] and again["store_id"] == first["store_id"]
    assert again["action"] == first["action"] and again["arch"] == first["arch"]
    env.close()
