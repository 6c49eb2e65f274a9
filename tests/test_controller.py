"""The reusable controller: exact top-k, sampling, and refusing a policy for another space."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from rlnas.agents.controller import Controller, _k_most_likely, load_controller
from rlnas.agents.ppo import make_ppo
from rlnas.config import ConfigError, load_agent_preset
from rlnas.envs.child_net import ChildNetEnv
from rlnas.envs.evaluators import space_for
from rlnas.space import SearchSpace


@pytest.mark.parametrize("seed", range(5))
def test_k_most_likely_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    logp = [np.log(rng.dirichlet(np.ones(n))) for n in (3, 2, 4, 3)]
    joint = sorted(
        (sum(lp[i] for lp, i in zip(logp, combo, strict=True)), combo)
        for combo in itertools.product(*(range(len(lp)) for lp in logp))
    )[::-1]
    top = _k_most_likely(logp, 10)
    assert [tuple(a) for a in top] == [combo for _, combo in joint[:10]]


@pytest.fixture
def saved_controller(tmp_path, digits_preset, fake_evaluator):
    env = ChildNetEnv(digits_preset, evaluator=fake_evaluator)
    model = make_ppo(load_agent_preset("ppo"), env)
    Controller(model.policy, env.space, env.reference_ms, model=model).save(tmp_path / "policy", digits_preset)
    return tmp_path


def test_controller_reloads_and_proposes(saved_controller, digits_preset):
    controller = load_controller(saved_controller, space=space_for(digits_preset))
    samples = controller.propose(4, deterministic=False, seed=1)
    assert len({str(p.arch) for p in samples}) == 4
    for p in samples:
        controller.space.validate(p.arch)
        assert p.log_prob <= 0
    assert controller.propose(1)[0].log_prob >= max(p.log_prob for p in samples)


def test_controller_refuses_another_space(saved_controller, digits_preset):
    other_config = dataclasses.replace(digits_preset.space, keep_ratios=(0.5, 1.0))
    other = SearchSpace(other_config, (1, 8, 8), 10)
    with pytest.raises(ConfigError, match="trained for search space"):
        load_controller(saved_controller, space=other)


def test_missing_or_damaged_controller_gives_clear_errors(saved_controller, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"policy\.safetensors"):
        load_controller(tmp_path / "nowhere")
    weights = saved_controller / "policy" / "policy.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ConfigError, match="could not be loaded"):
        load_controller(saved_controller)
    weights.unlink()
    with pytest.raises(ConfigError, match="could not be loaded"):
        load_controller(saved_controller)


def test_a_reloaded_controller_has_the_saved_policy(saved_controller, digits_preset, fake_evaluator):
    env = ChildNetEnv(digits_preset, evaluator=fake_evaluator)
    model = make_ppo(load_agent_preset("ppo"), env)
    saved = Controller(model.policy, env.space, env.reference_ms, model=model)
    saved.save(saved_controller / "again", digits_preset)
    loaded = load_controller(saved_controller / "again")
    for p, q in zip(loaded.probabilities(), saved.probabilities(), strict=True):
        np.testing.assert_array_equal(p, q)
    assert loaded.model is None and (saved_controller / "again" / "policy.zip").is_file()  # for PPO.load users
