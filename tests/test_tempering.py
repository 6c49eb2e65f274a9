"""The stall tempering of a PPO search: logits softened after ``stall_children`` children without a better reward."""

from __future__ import annotations

import pytest
import torch
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import DummyVecEnv

from rlnas.agents.ppo import make_ppo
from rlnas.agents.tempering import StallTempering
from rlnas.config import ConfigError, load_agent_preset
from rlnas.envs.child_net import ChildNetEnv
from rlnas.search import run_search
from rlnas.store import EvaluationStore


def _callback(tmp_path, preset, patience: int, factor: float) -> StallTempering:
    env = DummyVecEnv([lambda: ChildNetEnv(preset, store_path=tmp_path / "store.sqlite")])
    model = make_ppo(load_agent_preset("ppo"), env, seed=0)
    model.set_logger(configure(None, []))
    callback = StallTempering(patience, factor)
    callback.init_callback(model)
    return callback


def _children(callback: StallTempering, rewards: list[float], cached: bool = False) -> None:
    for reward in rewards:
        callback.locals = {"infos": [{"arch": "a", "cached": cached, "reward": reward}]}
        callback.on_step()


def test_logits_are_scaled_after_patience_children_without_a_better_reward(tmp_path, synthetic_table_preset):
    callback = _callback(tmp_path, synthetic_table_preset, patience=3, factor=0.5)
    head = callback.model.policy.action_net
    weight, bias = head.weight.detach().clone(), head.bias.detach().clone()
    _children(callback, [0.5, 0.4, 0.3])  # a best, then two worse: not yet stalled
    callback.on_rollout_end()
    assert torch.equal(head.weight, weight) and torch.equal(head.bias, bias)
    _children(callback, [0.45])  # the third child without a better reward
    callback.on_rollout_end()
    assert torch.allclose(head.weight, 0.5 * weight) and torch.allclose(head.bias, 0.5 * bias)
    assert callback.logger.name_to_value["search/tempered"] == 1
    callback.on_rollout_end()  # the count starts again after tempering
    assert torch.allclose(head.weight, 0.5 * weight)


def test_repeats_and_virtual_steps_do_not_count_and_a_better_child_resets(tmp_path, synthetic_table_preset):
    callback = _callback(tmp_path, synthetic_table_preset, patience=2, factor=0.5)
    weight = callback.model.policy.action_net.weight.detach().clone()
    _children(callback, [0.5, 0.1])
    _children(callback, [0.1, 0.1], cached=True)  # repeats answered from the store
    callback.locals = {"infos": [{"action": [0], "virtual": True}]}  # a virtual step: no arch
    callback.on_step()
    _children(callback, [0.6])  # better: the count starts again
    callback.on_rollout_end()
    assert torch.equal(callback.model.policy.action_net.weight, weight)


def test_a_search_with_stall_tempering_runs_to_its_budget(tmp_path, synthetic_table_preset):
    agent = load_agent_preset("ppo", ("stall_children=4", "stall_temper=0.5"))
    result = run_search(synthetic_table_preset, agent, evaluations=24, runs_dir=tmp_path, run_name="r",
                        progress_bar=False)  # fmt: skip
    assert len(EvaluationStore(result.run_dir / "evaluations.sqlite").records()) == 24


@pytest.mark.parametrize(("key", "value"), [("stall_children", 0), ("stall_temper", 0), ("stall_temper", 1.5)])
def test_bad_stall_settings_are_refused(key, value):
    with pytest.raises(ConfigError, match=key):
        load_agent_preset("ppo", (f"{key}={value}",))
