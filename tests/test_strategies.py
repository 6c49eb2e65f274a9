"""Search strategies in one harness: each runs a budget on a table, records every evaluation, and is reproducible."""

from __future__ import annotations

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rlnas.agents.baselines import RandomSearch, RegularizedEvolution, UniformMembers
from rlnas.cli import main
from rlnas.config import ConfigError, load_agent_preset
from rlnas.search import run_search
from rlnas.store import EvaluationStore

STRATEGY_NAMES = ["ppo", "evolution", "random"]


def archs_of(run_dir) -> list[str]:
    store = EvaluationStore(run_dir / "evaluations.sqlite")
    try:
        return [r["arch"] for r in store.records()]
    finally:
        store.close()


@pytest.mark.parametrize("strategy", STRATEGY_NAMES)
def test_each_strategy_records_every_evaluation(tmp_path, synthetic_table_preset, strategy):
    result = run_search(
        synthetic_table_preset, strategy, evaluations=30, runs_dir=tmp_path, run_name="r", progress_bar=False
    )
    archs = archs_of(result.run_dir)
    assert result.evaluations == len(archs) == len(set(archs)) == 30  # distinct children; repeats are cache hits
    assert all(synthetic_table_preset.space.operators for _ in archs)
    events = EventAccumulator(str(result.run_dir)).Reload()
    assert len(events.Scalars("child/reward")) == 30
    assert (result.controller is not None) == (strategy == "ppo")
    assert (result.run_dir / "policy" / "policy.zip").exists() == (strategy == "ppo")
    assert "by " + strategy in (result.run_dir / "summary.md").read_text()


@pytest.mark.parametrize("strategy", STRATEGY_NAMES)
def test_a_fixed_seed_reproduces_the_search(tmp_path, synthetic_table_preset, strategy):
    runs = [
        run_search(
            synthetic_table_preset,
            strategy,
            evaluations=24,
            runs_dir=tmp_path,
            run_name=f"s{i}",
            seed=7,
            progress_bar=False,
        )
        for i in range(2)
    ]
    other = run_search(
        synthetic_table_preset, strategy, evaluations=24, runs_dir=tmp_path, run_name="o", seed=8, progress_bar=False
    )
    assert archs_of(runs[0].run_dir) == archs_of(runs[1].run_dir)
    assert archs_of(runs[0].run_dir) != archs_of(other.run_dir)


def test_uniform_members_are_each_evaluated_once(tmp_path, synthetic_table_preset):
    result = run_search(
        synthetic_table_preset, "uniform", evaluations=100, runs_dir=tmp_path, run_name="u", progress_bar=False
    )
    archs = archs_of(result.run_dir)
    assert len(archs) == len(set(archs)) == 3  # 3 operators x 1 keep-ratio, then the strategy is exhausted
    assert all(len(set(a.split("|"))) == 1 for a in archs)


def evaluations_to_optimum(run_dir, optimum: float, budget: int) -> int:
    """How many evaluations a run made until it first evaluated a child of accuracy ``optimum`` (budget + 1: never)."""
    store = EvaluationStore(run_dir / "evaluations.sqlite")
    try:
        accuracies = [r["accuracy"] for r in store.records()]
    finally:
        store.close()
    return next((i + 1 for i, a in enumerate(accuracies) if a == pytest.approx(optimum)), budget + 1)


@pytest.mark.slow
def test_evolution_and_ppo_beat_random_on_an_easy_table(tmp_path, synthetic_table_preset):
    """The synthetic table is additive with a unique optimum (2222, the table's best accuracy): over the same
    seeds, evolution (a small population, so it starts mutating early) and the shipped PPO need fewer evaluations
    than random search to find it."""
    optimum, budget, seeds = 0.86, 30, range(6)
    strategies = {
        "random": load_agent_preset("random"),
        "evolution": load_agent_preset("evolution", ["population_size=8", "sample_size=3"]),
        "ppo": load_agent_preset("ppo"),
    }
    needed = {}
    for name, agent in strategies.items():
        runs = [
            run_search(
                synthetic_table_preset, agent, evaluations=budget, runs_dir=tmp_path, run_name=f"{name}{seed}",
                seed=seed, progress_bar=False,
            ).run_dir
            for seed in seeds
        ]  # fmt: skip
        needed[name] = np.mean([evaluations_to_optimum(run, optimum, budget) for run in runs])
    assert needed["evolution"] < needed["random"] and needed["ppo"] < needed["random"], needed


# ------------------------------------------------------------------------------------------- unit behaviour


def test_regularized_evolution_mutates_one_choice_of_a_tournament_winner():
    nvec = [3, 1, 3, 1, 3, 1]
    evo = RegularizedEvolution(nvec, population_size=4, sample_size=2, seed=0)
    for _ in range(4):
        action = evo.ask()
        evo.tell(action, float(action.sum()))
    members = [m for m, _ in evo.population]
    for _ in range(20):
        child = evo.ask()
        distances = [int((child != m).sum()) for m in members]
        assert 1 in distances  # one layer choice of a member (its parent) changed
        assert all(child[1::2] == 0)  # single-choice dimensions are never mutated
        evo.tell(child, float(child.sum()))
        members = [m for m, _ in evo.population]
        assert len(members) == 4  # the oldest member retires


def test_random_search_covers_the_space_uniformly():
    rs = RandomSearch([3, 2], seed=0)
    counts = np.zeros((3, 2))
    for _ in range(6000):
        a = rs.ask()
        counts[a[0], a[1]] += 1
    assert counts.min() > 850 and counts.max() < 1150


def test_uniform_members_order(tiny_space):
    members = UniformMembers(tiny_space)
    first = tiny_space.decode(members.ask())
    assert first == tiny_space.uniform(tiny_space.operators[0], tiny_space.keep_ratios[0])


# ------------------------------------------------------------------------------------------------ presets/CLI


def test_strategy_presets_load_and_validate():
    assert load_agent_preset("evolution").population_size == 20
    assert load_agent_preset("random").algo == "random"
    with pytest.raises(ConfigError, match=r"sample_size: 30"):
        load_agent_preset("evolution", ["sample_size=30"])
    with pytest.raises(ConfigError, match=r"algo: 'reinforce' is not allowed; choose one of ppo, evolution"):
        load_agent_preset({"name": "x", "algo": "reinforce"})


def test_cli_runs_a_strategy_with_overrides(tmp_path, synthetic_table_preset, capsys):
    table = synthetic_table_preset.table.path
    env_file = tmp_path / "env.yaml"
    from rlnas.config import dump_yaml

    dump_yaml(synthetic_table_preset, env_file)
    code = main([
        "search", "--env", str(env_file), "--strategy", "evolution", "--agent-set", "population_size=5",
        "--set", f"table.path={table}", "--evaluations", "12", "--runs-dir", str(tmp_path), "--run-name", "cli",
        "--no-progress",
    ])  # fmt: skip
    assert code == 0
    assert "12 children evaluated by evolution" in capsys.readouterr().out
    assert "population_size: 5" in (tmp_path / "cli" / "config.yaml").read_text()


def test_cli_refuses_a_strategy_that_contradicts_the_agent_preset(tmp_path, capsys):
    code = main(["search", "--env", "digits", "--strategy", "ppo", "--agent", "evolution", "--runs-dir", str(tmp_path)])
    assert code == 2
    assert "--agent evolution is for strategy evolution, not ppo" in capsys.readouterr().err


def test_cli_names_a_bad_override(tmp_path, capsys):
    code = main(["search", "--env", "digits", "--set", "train.stepz", "--runs-dir", str(tmp_path)])
    assert code == 2 and "expected KEY=VALUE" in capsys.readouterr().err


def test_reward_shaping_ranks_first_visits_and_neutralises_repeats(synthetic_table_preset):
    """The learner's reward: percentile among first visits, centred; 0 for a child already seen."""
    from gymnasium import spaces
    from stable_baselines3.common.vec_env import DummyVecEnv

    from rlnas.agents.reward_shaping import RewardShaping
    from rlnas.envs.child_net import ChildNetEnv

    venv = DummyVecEnv([lambda: ChildNetEnv(synthetic_table_preset)])
    assert isinstance(venv.action_space, spaces.MultiDiscrete)
    shaping = RewardShaping(venv, "rank", "neutral")
    a, b, c = np.array([0, 0]), np.array([1, 0]), np.array([2, 0])
    assert shaping.shape(a, 0.5) == 0.0  # alone: the median of one
    assert shaping.shape(b, 0.9) == pytest.approx(0.25)  # (1 lower + 0.5 equal) / 2 - 0.5
    assert shaping.shape(a, 0.5) == 0.0  # a repeat teaches nothing and leaves the history alone
    assert shaping.history == [0.5, 0.9]
    assert shaping.shape(c, 0.1) == pytest.approx(0.5 / 3 - 0.5)
    raw = RewardShaping(venv, "none", "reward")
    assert raw.shape(a, 0.5) == raw.shape(a, 0.5) == 0.5
    redraw = RewardShaping(venv, "rank", "redraw")  # a repeat got past the redraws: the policy has collapsed
    assert redraw.shape(a, 0.5) == 0.0 and redraw.shape(b, 0.9) == pytest.approx(0.25)
    assert redraw.shape(b, 0.9) == -0.5 and redraw.history == [0.5, 0.9]
    raw_redraw = RewardShaping(venv, "none", "redraw")
    assert [raw_redraw.shape(b, 0.9), raw_redraw.shape(a, 0.5), raw_redraw.shape(b, 0.9)] == [0.9, 0.5, 0.5]


def test_log_rank_rewards_the_top_children_most(synthetic_table_preset):
    """``log_rank``: -log(1 - percentile); repeats get the median's (neutral) or the worst child's (redraw)."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    from rlnas.agents.reward_shaping import RewardShaping
    from rlnas.envs.child_net import ChildNetEnv

    venv = DummyVecEnv([lambda: ChildNetEnv(synthetic_table_preset)])
    shaping = RewardShaping(venv, "log_rank", "neutral")
    rewards = [0.5, 0.6, 0.1, 0.9]
    shaped = [shaping.shape(np.array([i, 0]), r) for i, r in enumerate(rewards)]
    assert shaped == pytest.approx([np.log(2), np.log(4), -np.log(1 - 0.5 / 3), np.log(8)])  # best of n: log 2n
    assert shaping.shape(np.array([0, 0]), 0.5) == pytest.approx(np.log(2))  # a repeat: the median child's
    redraw = RewardShaping(venv, "log_rank", "redraw")
    assert redraw.shape(np.array([0, 0]), 0.5) == pytest.approx(np.log(2))
    assert redraw.shape(np.array([0, 0]), 0.5) == 0.0  # a repeat past the redraws: the worst child's


def test_a_rank_window_ranks_among_the_latest_first_visits_only(synthetic_table_preset):
    """With ``rank_window``, old rewards drop out: a child beating its recent peers ranks high again."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    from rlnas.agents.reward_shaping import RewardShaping
    from rlnas.envs.child_net import ChildNetEnv

    venv = DummyVecEnv([lambda: ChildNetEnv(synthetic_table_preset)])
    windowed, full = RewardShaping(venv, "rank", "neutral", window=2), RewardShaping(venv, "rank", "neutral")
    children = [(np.array([i, 0]), r) for i, r in enumerate((0.9, 0.2, 0.3))]
    shaped = [(windowed.shape(a, r), full.shape(a, r)) for a, r in children]
    assert shaped[1] == (pytest.approx(0.25 - 0.5), pytest.approx(0.25 - 0.5))  # both see 0.9 and 0.2
    assert shaped[2] == (pytest.approx(0.25), pytest.approx(1.5 / 3 - 0.5))  # the window forgot 0.9
    assert windowed.shape(children[0][0], 0.9) == 0.0  # repeats stay neutral and out of the window
    assert windowed.history == full.history == [0.9, 0.2, 0.3]
