"""ChildNetEnv: the Gymnasium/SB3 API checkers, what a step returns, latency targets, the store, divergence."""

from __future__ import annotations

import dataclasses
import math
import warnings

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env as gymnasium_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import rlnas  # noqa: F401  (registers rlnas/ChildNet-v0)
import rlnas.training.data as data_module
from rlnas.envs.child_net import MAX_TARGET_RATIO, ChildNetEnv
from rlnas.envs.evaluators import ScratchEvaluator
from rlnas.store import EvaluationStore
from rlnas.training.data import DataSplits, Split, load_data

INFO_KEYS = {
    "arch", "accuracy", "latency_ms", "flops", "params", "params_unpruned", "train_s", "reward", "exponent",
    "cost", "target", "status",
}  # fmt: skip


@pytest.fixture(scope="module")
def digits_data(_digits_preset) -> DataSplits:
    """The digits splits, loaded once for the module (ScratchEvaluator accepts preloaded data)."""
    return load_data(_digits_preset.data)


@pytest.fixture
def quick_preset(digits_preset):
    """The smallest real budget: enough for the API checkers, which only look at types and shapes."""
    train = dataclasses.replace(digits_preset.train, steps=2, finetune_steps=1, recalibration_batches=1)
    return dataclasses.replace(digits_preset, train=train)


def real_env(preset, data: DataSplits, **kwargs) -> ChildNetEnv:
    return ChildNetEnv(preset, evaluator=ScratchEvaluator(preset, data=data), **kwargs)


def action_for(env: ChildNetEnv, text: str) -> np.ndarray:
    return env.space.encode(env.space.parse(text))


# ------------------------------------------------------------------------------------------- API checkers


@pytest.fixture
def no_fashion_mnist(tmp_path, monkeypatch) -> None:
    """Hide any installed Fashion-MNIST, so nothing here can silently depend on the default preset's data."""
    monkeypatch.setattr(data_module, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "no-fashion-mnist")
    monkeypatch.setenv("RLNAS_DATA", str(tmp_path / "empty-data-dir"))


def test_gymnasium_checker_passes_on_the_registered_env(quick_preset, no_fashion_mnist):
    env = gymnasium.make("rlnas/ChildNet-v0", preset=quick_preset)
    try:
        assert isinstance(env.unwrapped, ChildNetEnv)
        assert isinstance(env.unwrapped.evaluator, ScratchEvaluator)
        gymnasium_check_env(env.unwrapped)  # also rebuilds the env from its spec (close check)
    finally:
        env.close()


def test_gymnasium_checker_passes_on_a_directly_built_env(quick_preset, no_fashion_mnist):
    env = ChildNetEnv(preset=quick_preset)
    try:
        assert env.spec is not None and env.spec.nondeterministic  # measured latency: rewards cannot repeat
        gymnasium_check_env(env)
    finally:
        env.close()


def test_stable_baselines3_checker_passes(quick_preset):
    env = ChildNetEnv(preset=quick_preset)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # SB3 warns about spaces and values it cannot handle well
            sb3_check_env(env)
    finally:
        env.close()


def test_make_works_after_import(digits_preset):
    assert "rlnas/ChildNet-v0" in gymnasium.registry
    env = gymnasium.make("rlnas/ChildNet-v0", preset=digits_preset)
    try:
        assert env.spec.nondeterministic
        obs, info = env.reset(seed=0)
        assert env.observation_space.contains(obs) and info == {}
        _, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert terminated and not truncated and math.isfinite(reward)
        assert info["status"] == "ok"
    finally:
        env.close()


# --------------------------------------------------------------------------------------------------- steps


def test_spaces_follow_the_search_space(digits_preset, fake_evaluator):
    env = ChildNetEnv(digits_preset, evaluator=fake_evaluator)
    assert isinstance(env.action_space, spaces.MultiDiscrete)
    assert env.action_space.nvec.tolist() == fake_evaluator.space.nvec
    assert env.observation_space.shape == (1,) and env.observation_space.dtype == np.float32
    obs, _ = env.reset()
    assert obs.dtype == np.float32 and obs.tolist() == [1.0]


def test_a_step_trains_prunes_and_reports(digits_preset, digits_data):
    env = real_env(digits_preset, digits_data)
    env.reset(seed=0)
    arch = "conv3x3@0.5|mbconv3_k3@0.25|sep3x3@1.0|conv3x3@0.25"
    obs, reward, terminated, truncated, info = env.step(action_for(env, arch))

    assert terminated is True and truncated is False
    assert type(reward) is float and math.isfinite(reward)
    assert INFO_KEYS <= set(info)
    assert info["status"] == "ok" and info["arch"] == arch and info["reason"] == ""
    assert 0.0 <= info["accuracy"] <= 1.0
    assert info["latency_ms"] > 0 and info["flops"] > 0 and info["train_s"] > 0
    assert 0 < info["params"] < info["params_unpruned"]
    assert info["target"] == digits_preset.reward.target_ms and info["cost"] == info["latency_ms"]
    assert obs.tolist() == [1.0]
    # the reward is the budget formula of what was measured: the accuracy within the target, less over it
    t = digits_preset.reward
    ratio = info["latency_ms"] / t.target_ms
    expected = info["accuracy"] - t.slack * max(0.0, 1 - ratio) - t.penalty * max(0.0, ratio - 1)
    assert t.kind == "budget" and info["exponent"] == 0.0 and reward == pytest.approx(expected)
    assert info["reward"] == reward

    # the same child trains the same way: its accuracy and size do not change, only timings do
    _, _, _, _, again = env.step(action_for(env, arch))
    for key in ("accuracy", "flops", "params", "params_unpruned"):
        assert again[key] == info[key], key


def test_unpruned_child_keeps_its_parameters(digits_preset, fake_evaluator):
    env = ChildNetEnv(digits_preset, evaluator=fake_evaluator)
    full = env.step(action_for(env, "conv3x3@1.0|sep3x3@1.0|mbconv3_k3@1.0|skip@1.0"))[4]
    assert full["params"] == full["params_unpruned"]
    pruned = env.step(action_for(env, "conv3x3@0.5|sep3x3@1.0|mbconv3_k3@1.0|skip@1.0"))[4]
    assert pruned["params"] < pruned["params_unpruned"] == full["params_unpruned"]
    assert fake_evaluator.calls == 2


def test_bad_actions_are_refused(digits_preset, fake_evaluator):
    env = ChildNetEnv(digits_preset, evaluator=fake_evaluator)
    with pytest.raises(ValueError, match="does not fit"):
        env.step(np.zeros(3, dtype=np.int64))
    assert fake_evaluator.calls == 0


# ------------------------------------------------------------------------------------------ latency targets


def test_reset_options_change_the_target_and_the_observation(digits_preset, fake_evaluator):
    env = ChildNetEnv(digits_preset, evaluator=fake_evaluator)
    ref = digits_preset.reward.target_ms
    action = action_for(env, "mbconv3_k3@1.0|mbconv3_k3@1.0|conv3x3@1.0|conv3x3@1.0")  # slower than the target
    obs, _ = env.reset()
    _, reward_ref, _, _, info_ref = env.step(action)
    assert info_ref["latency_ms"] > ref

    obs2, _ = env.reset(options={"target_latency_ms": 4 * ref})
    assert obs2.tolist() == pytest.approx([4.0]) and obs2.tolist() != obs.tolist()
    assert env.observation_space.contains(obs2)
    _, reward_loose, _, _, info = env.step(action)
    assert info["target"] == 4 * ref
    assert reward_loose > reward_ref  # a looser target penalises the same child less

    obs3, _ = env.reset()  # the target persists until changed again
    assert obs3.tolist() == pytest.approx([4.0])


def test_constructor_target_overrides_the_preset(digits_preset, fake_evaluator):
    env = ChildNetEnv(digits_preset, evaluator=fake_evaluator, target_latency_ms=0.25)
    assert env.reset()[0].tolist() == pytest.approx([0.25 / digits_preset.reward.target_ms])


@pytest.mark.parametrize("ratio", [-1.0, 0.0, MAX_TARGET_RATIO * 1.01])
def test_out_of_range_target_raises(digits_preset, fake_evaluator, ratio):
    env = ChildNetEnv(digits_preset, evaluator=fake_evaluator)
    target = ratio * digits_preset.reward.target_ms
    with pytest.raises(ValueError, match="out of range"):
        env.reset(options={"target_latency_ms": target})
    with pytest.raises(ValueError, match="out of range"):
        ChildNetEnv(digits_preset, evaluator=fake_evaluator, target_latency_ms=target)


# --------------------------------------------------------------------------------------------------- store


def test_every_step_is_committed_before_it_returns(tmp_path, digits_preset, fake_evaluator):
    path = tmp_path / "runs" / "evaluations.sqlite"
    env = ChildNetEnv(digits_preset, evaluator=fake_evaluator, store_path=path)
    env.action_space.seed(0)
    try:
        for n in range(1, 4):
            env.reset()
            _, reward, _, _, info = env.step(env.action_space.sample())
            reader = EvaluationStore(path)  # another connection sees only committed rows
            try:
                records = reader.records()
            finally:
                reader.close()
            assert len(records) == n
            last = records[-1]
            assert last["id"] == info["store_id"]
            assert last["arch"] == info["arch"] and last["reward"] == reward
            assert last["latency_ms"] == info["latency_ms"] and last["status"] == "ok"
            assert last["action"] == [int(a) for a in env.space.encode(env.space.parse(info["arch"]))]
    finally:
        env.close()
    assert env.store is None


# ---------------------------------------------------------------------------------------------- divergence


def test_a_diverging_child_gets_the_failure_reward(tmp_path, digits_preset, digits_data):
    preset = dataclasses.replace(digits_preset, reward=dataclasses.replace(digits_preset.reward, failure_reward=-0.5))
    poisoned = dataclasses.replace(digits_data, train=Split(digits_data.train.x.clone(), digits_data.train.y))
    evaluator = ScratchEvaluator(preset, data=poisoned)
    evaluator.data.train.x[:] = torch.nan
    env = ChildNetEnv(preset, evaluator=evaluator, store_path=tmp_path / "store.sqlite")
    try:
        _, reward, terminated, truncated, info = env.step(action_for(env, "conv3x3@0.5|skip@1.0|sep3x3@1.0|skip@0.5"))
        assert reward == -0.5
        assert terminated and not truncated
        assert info["status"] == "diverged"
        assert "step" in info["reason"] and "nan" in info["reason"].lower()
        assert info["accuracy"] == 0.0
        assert EvaluationStore(tmp_path / "store.sqlite").records()[-1]["status"] == "diverged"
    finally:
        env.close()
    assert not torch.isnan(digits_data.train.x).any(), "the shared data must stay clean"
