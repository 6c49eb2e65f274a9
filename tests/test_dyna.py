"""Virtual rollouts (DyNA-PPO): the reward model, the wrapper that answers rollouts with it, and a search using it."""

import itertools

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv

from rlnas.agents.dyna import VirtualRollouts
from rlnas.agents.reward_shaping import RewardShaping
from rlnas.agents.surrogate import RewardModel, shared_choice_kernel
from rlnas.config import ConfigError, load_agent_preset
from rlnas.search import run_search
from rlnas.store import EvaluationStore


def pairwise_rewards(actions: np.ndarray, seed: int = 0) -> np.ndarray:
    """Rewards with per-choice effects and one strong interaction (choice 2 at layers 0 and 1 together)."""
    rng = np.random.default_rng(seed)
    effects = rng.normal(0, 0.01, size=(actions.shape[1], 3))
    additive = effects[np.arange(actions.shape[1]), actions].sum(axis=1)
    return 0.9 + additive + 0.03 * ((actions[:, 0] == 2) & (actions[:, 1] == 2))


def test_kernel_counts_shared_choices_and_pairs_of_them():
    a = np.array([[0, 1, 2, 0]])
    b = np.array([[0, 1, 2, 0], [0, 1, 0, 1], [1, 2, 0, 1]])
    assert shared_choice_kernel(a, b).tolist() == [[4 + 6, 2 + 1, 0]]


def test_reward_model_learns_an_interaction_and_its_leave_one_out_r2_is_exact():
    space = np.array(list(itertools.product(range(3), repeat=5)))
    rng = np.random.default_rng(1)
    train = space[rng.choice(len(space), 60, replace=False)]
    model = RewardModel()
    r2 = model.fit(train, pairwise_rewards(train))
    # leave-one-out by refitting n times (the closed form uses the mean of all n rewards: nearly the same)
    residuals = []
    for i in range(len(train)):
        rest = np.delete(np.arange(len(train)), i)
        refit = RewardModel()
        refit.fit(train[rest], pairwise_rewards(train)[rest])
        residuals.append(pairwise_rewards(train)[i] - refit.predict(train[i : i + 1])[0])
    y = pairwise_rewards(train)
    brute = 1 - np.sum(np.square(residuals)) / np.sum((y - y.mean()) ** 2)
    assert r2 == pytest.approx(brute, abs=0.05) and r2 > 0.5
    truth, predicted = pairwise_rewards(space), model.predict(space)
    assert np.corrcoef(truth, predicted)[0, 1] > 0.8  # generalises to the 243 - 60 children it never saw
    assert space[np.argmax(predicted)][:2].tolist() == [2, 2]  # and places the interaction's optimum


def test_reward_model_is_less_certain_of_children_unlike_those_it_has_seen():
    space = np.array(list(itertools.product(range(3), repeat=5)))
    seen = space[(space[:, 0] == 0) & (space[:, 1] == 0)]  # 27 children, all with choice 0 at layers 0 and 1
    model = RewardModel()
    model.fit(seen, pairwise_rewards(seen))
    _, std_seen = model.predict_with_std(seen)
    _, std_near = model.predict_with_std(np.array([[1, 0, 0, 0, 0]]))
    _, std_far = model.predict_with_std(np.array([[2, 2, 0, 0, 0]]))
    assert std_seen.max() < std_near[0] < std_far[0]


class CountingEnv(gym.Env):
    """One-step episodes over 3 x 3 choices; the reward is a fixed table; ``calls`` counts real steps."""

    observation_space = gym.spaces.Box(0, 1, (1,), np.float32)
    action_space = gym.spaces.MultiDiscrete([3, 3])
    calls = 0

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        return np.ones(1, np.float32), {}

    def step(self, action):
        CountingEnv.calls += 1
        reward = 0.1 * action[0] + 0.01 * action[1]
        return np.ones(1, np.float32), reward, True, False, {"action": np.asarray(action), "arch": str(action)}


def test_virtual_rollouts_alternate_with_real_ones_and_answer_from_the_model():
    CountingEnv.calls = 0
    env = VirtualRollouts(DummyVecEnv([CountingEnv]), rollout_steps=4, virtual_rollouts=2, min_r2=-1e9, min_children=3)
    env.reset()
    real = [np.array([[i % 3, (i // 3) % 3]]) for i in range(4)]
    for action in real:  # one real rollout
        env.step(action)
    assert CountingEnv.calls == 4 and env.virtual and len(env.rewards) == 4
    for _ in range(2 * 4):  # two virtual rollouts: the environment is not called
        action = np.array([[2, 2]])
        _, reward, done, info = env.step(action)
        assert info[0]["virtual"] and "arch" not in info[0] and done[0]
        assert reward[0] == pytest.approx(env.model.predict(action)[0])
    _, reward, _, info = env.step(np.array([[1, 0]]))  # real again
    assert CountingEnv.calls == 5 and "virtual" not in info[0] and reward[0] == pytest.approx(0.1)


def test_a_known_child_is_answered_with_its_real_reward_and_shaping_ignores_virtual_steps():
    env = VirtualRollouts(DummyVecEnv([CountingEnv]), rollout_steps=3, virtual_rollouts=1, min_r2=-1e9, min_children=3)
    shaping = RewardShaping(env, "rank", "reward")
    shaping.reset()
    for action in ([0, 0], [1, 1], [2, 2]):
        shaping.step(np.array([action]))
    history = list(shaping.history)
    _, reward, _, info = shaping.step(np.array([[2, 2]]))  # virtual, but a child already evaluated: real reward
    assert info[0]["virtual"] and env.rewards[(2, 2)] == pytest.approx(0.22)
    assert reward[0] == pytest.approx((2 + 0.5 * 2) / 4 - 0.5)  # ranked among the real rewards, itself included
    assert shaping.history == history and shaping.seen == {(0, 0), (1, 1), (2, 2)}


def test_a_search_with_virtual_rollouts_records_only_real_children(tmp_path, synthetic_table_preset):
    agent = load_agent_preset("ppo", ["n_steps=4", "batch_size=4", "virtual_rollouts=3", "surrogate_min_children=4"])
    result = run_search(synthetic_table_preset, agent, evaluations=20, runs_dir=tmp_path, run_name="dyna",
                       progress_bar=False)  # fmt: skip
    store = EvaluationStore(tmp_path / "dyna" / "evaluations.sqlite")
    records, steps = store.records(), store.steps()
    store.close()
    assert len({r["arch"] for r in records}) == len(records) >= 8  # each child evaluated once
    assert {s["arch"] for s in steps} == {r["arch"] for r in records}
    assert max(r["accuracy"] for r in records) == pytest.approx(0.86)  # the table's optimum
    # the learner also took virtual steps, which the store never saw
    assert result.controller.model.num_timesteps > len(steps)
    header = (tmp_path / "dyna" / "progress.csv").read_text().splitlines()[0].split(",")
    assert "virtual/model_r2" in header and "virtual/next_rollout_virtual" in header


def test_virtual_rollouts_need_the_joint_factorisation():
    with pytest.raises(ConfigError, match="virtual_rollouts"):
        load_agent_preset("ppo", ["factorisation=sequential", "repeated_children=neutral"])


def test_max_steps_counts_real_steps_only(tmp_path, synthetic_table_preset):
    agent = load_agent_preset("ppo", ["n_steps=4", "batch_size=4", "virtual_rollouts=3", "surrogate_min_children=4"])
    run_search(synthetic_table_preset, agent, evaluations=30, max_steps=40, runs_dir=tmp_path, run_name="capped",
               progress_bar=False)  # fmt: skip
    store = EvaluationStore(tmp_path / "capped" / "evaluations.sqlite")
    steps, evaluated = store.step_count(), len(store)
    store.close()
    assert steps <= 40 and (steps == 40 or evaluated == 30)  # SB3 counted 4x as many timesteps as allowed
