"""rlnas/PruneModel-v0: an existing model pruned to a keep-ratio per Torch-Pruning group, on digits-sized data."""

from __future__ import annotations

import dataclasses
import math
import warnings

import gymnasium
import numpy as np
import pytest
import torch
import yaml
from gymnasium.utils.env_checker import check_env as gymnasium_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from rlnas.config import ConfigError, load_env_preset
from rlnas.envs.child_net import ChildNetEnv
from rlnas.envs.evaluators import EvalResult
from rlnas.envs.make import make_env
from rlnas.envs.prune_evaluator import PruneEvaluator
from rlnas.envs.prune_model import PruneModelEnv
from rlnas.envs.prune_sequential import FEATURES, SequentialPrune
from rlnas.envs.reward import RewardTerms
from rlnas.latency import count_flops
from rlnas.presets import resolve_preset
from rlnas.pruning.foreign import ModelSpecError, build_named_model, load_checkpoint
from rlnas.pruning.foreign.weights import pretrained_path, trained_model


@pytest.fixture(scope="module")
def evaluator(prune_preset) -> PruneEvaluator:
    return PruneEvaluator(prune_preset)


def test_a_step_prunes_fine_tunes_and_stores_like_childnet(prune_preset, evaluator):
    env = PruneModelEnv(prune_preset, evaluator=evaluator)
    try:
        assert len(env.space.groups) == 4 and env.action_space.nvec.tolist() == [3] * 4
        obs, _ = env.reset(seed=0)
        assert obs.tolist() == [1.0]  # no latency target: the FLOPs target is fixed
        action = np.array([0, 1, 0, 2])
        _, reward, terminated, truncated, info = env.step(action)
        assert terminated and not truncated and info["status"] == "ok" and not info["cached"]
        expected = {f.name for f in dataclasses.fields(EvalResult)} | {f.name for f in dataclasses.fields(RewardTerms)}
        keys = {"action", "key", "store_id", "cached", "step_id", "evaluations", "replayed", "multiplier"}
        assert set(info) == expected | keys
        assert info["flops"] < evaluator.flops_unpruned and info["params"] < info["params_unpruned"]
        assert info["cost"] == info["flops"] / 1e6 and info["target"] == 0.3
        assert reward == pytest.approx(info["accuracy"] - max(0.0, info["cost"] / 0.3 - 1))
        assert info["arch"] == "keep:0.25,0.5,0.25,1" and info["latency_ms"] > 0
        _, again, _, _, cached = env.step(action)
        assert cached["cached"] and again == reward and cached["evaluations"] == 1
    finally:
        env.close()


def test_keep_ratios_that_round_alike_are_one_plan(prune_dict):
    preset = load_env_preset({**prune_dict, "model": {**prune_dict["model"], "round_to": 8}})
    space = PruneEvaluator(preset).space
    # groups of 8 channels cannot shrink below one unit of 8: every ratio keeps all of them, as index 0 does
    small = [i for i, g in enumerate(space.groups) if g.channels == 8]
    canonical = space.canonical_action([2] * 4)
    assert (
        small and all(canonical[i] == 0 for i in small) and all(canonical[i] == 2 for i in range(4) if i not in small)
    )
    assert all(c % 8 == 0 for c in space.counts([0, 1, 0, 1]))


def test_gymnasium_and_sb3_checkers_pass(prune_preset, evaluator):
    env = gymnasium.make("rlnas/PruneModel-v0", preset=prune_preset, evaluator=evaluator)
    try:
        assert isinstance(env.unwrapped, PruneModelEnv) and env.spec.nondeterministic
        gymnasium_check_env(env.unwrapped)
    finally:
        env.close()
    env = PruneModelEnv(prune_preset, evaluator=evaluator)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            sb3_check_env(env)
    finally:
        env.close()


def test_make_env_dispatches_on_the_model_section(prune_preset, evaluator, digits_preset, fake_evaluator):
    env = make_env(prune_preset, evaluator=evaluator)
    assert type(env) is PruneModelEnv
    env.close()
    env = make_env(digits_preset, evaluator=fake_evaluator)
    assert type(env) is ChildNetEnv
    env.close()


def test_a_preset_without_a_model_is_refused(digits_preset):
    with pytest.raises(ValueError, match="env preset 'digits' has no model section"):
        PruneModelEnv(digits_preset)


def test_a_flops_target_no_plan_reaches_is_refused(prune_dict, evaluator):
    preset = load_env_preset({**prune_dict, "reward": {"kind": "budget", "cost": "flops", "target_mflops": 0.001}})
    with pytest.raises(ValueError, match=r"reward.target_mflops 0.001 is below the .* MFLOPs of the smallest plan"):
        PruneModelEnv(preset, evaluator=evaluator)


def test_pretraining_is_cached(prune_dict, tmp_path):
    preset = load_env_preset({**prune_dict, "model": {**prune_dict["model"], "pretrain": {"epochs": 1}}})
    from rlnas.training.data import load_data

    data = load_data(preset.data)
    first = trained_model(preset, data, cache_dir=tmp_path)
    assert pretrained_path(preset, tmp_path).is_file()
    again = trained_model(preset, data, cache_dir=tmp_path)
    fresh = build_named_model("tiny_models:tiny_net", (1, 8, 8), 10)
    for key, value in first.state_dict().items():
        assert torch.equal(again.state_dict()[key], value)
    assert not torch.equal(fresh.state_dict()["fc.weight"], first.state_dict()["fc.weight"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "torchvision:resnet81"}, "unknown torchvision model 'resnet81': did you mean resnet18"),
        ({"name": "resnet18"}, "expected torchvision:NAME"),
        ({"name": "no_such_package.models:net"}, "cannot be imported"),
        ({"keep_ratios": [0.5, 1.5]}, "model.keep_ratios"),
        ({"round_to": 0}, "model.round_to"),
        ({"checkpoint": "w.pt", "pretrain": {"epochs": 1}}, "give one"),
        ({"importance": "taylor"}, "model.importance: 'taylor' is not allowed"),
    ],
)
def test_bad_model_sections_are_refused_with_the_key(prune_dict, change, message):
    with pytest.raises(ConfigError, match=message):
        load_env_preset({**prune_dict, "model": {**prune_dict["model"], **change}})


def test_a_model_section_excludes_a_space_and_a_latency_table(prune_dict):
    digits = yaml.safe_load(resolve_preset("digits", "envs").read_text())
    with pytest.raises(ConfigError, match="no space section with a model section"):
        load_env_preset({**prune_dict, "space": digits["space"]})
    with pytest.raises(ConfigError, match=r"latency\.source: 'table' is not allowed with a model section"):
        load_env_preset({**prune_dict, "latency": {**prune_dict["latency"], "source": "table"}})


def test_checkpoints_load_safely_and_must_fit(tmp_path):
    model = build_named_model("tiny_models:tiny_net", (1, 8, 8), 10)
    good = tmp_path / "good.pt"
    torch.save({"state_dict": model.state_dict()}, good)
    other = build_named_model("tiny_models:tiny_net", (1, 8, 8), 10)
    load_checkpoint(other, good)
    assert torch.equal(other.fc.weight, model.fc.weight)
    wrong = tmp_path / "wrong.pt"
    torch.save(build_named_model("tiny_models:tiny_net", (1, 8, 8), 7).state_dict(), wrong)
    with pytest.raises(ModelSpecError, match=r"does not fit the model: 2 shape mismatches \(first: fc.bias\)"):
        load_checkpoint(other, wrong)
    pickled = tmp_path / "pickled.pt"
    torch.save(model, pickled)  # a whole pickled module: code, refused by weights_only=True
    with pytest.raises(ModelSpecError, match="cannot be loaded with weights_only=True"):
        load_checkpoint(other, pickled)
    with pytest.raises(ModelSpecError, match="does not exist"):
        load_checkpoint(other, tmp_path / "missing.pt")


def test_evaluations_of_other_weights_are_not_reused(prune_preset, evaluator):
    other = PruneEvaluator(prune_preset, model=build_named_model("tiny_models:tiny_net", (1, 8, 8), 10))
    assert other.space.fingerprint != evaluator.space.fingerprint
    assert math.isclose(count_flops(other.model, (1, 8, 8)), evaluator.flops_unpruned)


def test_amc_sequential_decides_one_group_per_step(prune_preset, evaluator):
    env = SequentialPrune(PruneModelEnv(prune_preset, evaluator=evaluator))
    try:
        obs, _ = env.reset(seed=0)
        assert obs.shape == (len(FEATURES),) and obs[0] == 0.0 and obs[7] == 1.0 and obs[9] == 1.0
        assert obs[8] == pytest.approx(1 - 0.3e6 / evaluator.flops_unpruned)  # all FLOPs still above the target
        rewards = []
        for step, action in enumerate([0, 1, 0, 2]):
            obs, reward, terminated, _, info = env.step(action)
            rewards.append(reward)
            assert terminated == (step == 3)
            if step < 3:
                assert obs[0] == pytest.approx((step + 1) / 3) and obs[7] < 1.0 and info == {}
        assert info["arch"] == "keep:0.25,0.5,0.25,1" and rewards[:3] == [0.0] * 3 and rewards[3] == info["reward"]
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            sb3_check_env(env)
    finally:
        env.close()
