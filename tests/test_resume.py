"""Resume: a crashed or killed search continues from its checkpoint and store, with nothing evaluated twice."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from conftest import FakeEvaluator, kill_when_stored

from rlnas.agents.controller import load_controller
from rlnas.config import ConfigError, load_agent_preset, load_env_preset
from rlnas.envs.evaluators import ScratchEvaluator, space_for
from rlnas.search import resume_search, run_search
from rlnas.store import EvaluationStore


class Crash(Exception):
    """Stands in for the machine going away in the middle of a child."""


class CrashingEvaluator(FakeEvaluator):
    """A fake evaluator that crashes when asked for its ``limit + 1``-th child."""

    def __init__(self, space, limit: int) -> None:
        super().__init__(space)
        self.limit = limit

    def evaluate(self, arch):
        if self.calls == self.limit:
            raise Crash(f"crashed while evaluating {arch}")
        return super().evaluate(arch)


VIRTUAL = {"virtual_rollouts": 1, "surrogate_min_children": 3, "surrogate_min_r2": -1e9}  # always trusted


@pytest.fixture(params=["joint", "sequential", "joint+virtual", "joint+redraw"])
def fast_agent(request):
    factorisation, _, option = request.param.partition("+")
    extra = {"virtual": VIRTUAL, "redraw": {"repeated_children": "redraw"}}.get(option, {})
    plain = {"virtual_rollouts": 0, "repeated_children": "neutral"}  # each option alone (sequential allows neither)
    return load_agent_preset(
        {"name": "fast", "n_steps": 4, "batch_size": 4, "n_epochs": 2, "factorisation": factorisation, **plain, **extra}
    )


def history(run_dir) -> tuple[list[str], list[str]]:
    """The run's evaluated architectures and the architecture of every step, in order."""
    store = EvaluationStore(run_dir / "evaluations.sqlite")
    try:
        return [r["arch"] for r in store.records()], [s["arch"] for s in store.steps()]
    finally:
        store.close()


@pytest.fixture
def crashed_run(tmp_path, digits_preset, fast_agent):
    space = space_for(digits_preset)
    with pytest.raises(Crash):
        run_search(digits_preset, fast_agent, evaluations=14, run_name="crashed", runs_dir=tmp_path,
                   evaluator=CrashingEvaluator(space, limit=9), progress_bar=False)  # fmt: skip
    return tmp_path / "crashed", space


def test_a_crashed_search_resumes_to_the_uninterrupted_result(tmp_path, digits_preset, fast_agent, crashed_run):
    run_dir, space = crashed_run
    assert len(history(run_dir)[0]) == 9
    assert (run_dir / "checkpoints").is_dir()

    fresh = FakeEvaluator(space)
    result = resume_search(run_dir, evaluator=fresh, progress_bar=False)
    assert result.evaluations == 14
    assert fresh.calls == 14 - 9, "a child evaluated before the crash was evaluated again"

    run_search(digits_preset, fast_agent, evaluations=14, run_name="whole", runs_dir=tmp_path,
               evaluator=FakeEvaluator(space), progress_bar=False)  # fmt: skip
    assert history(run_dir) == history(tmp_path / "whole")
    resumed, whole = load_controller(run_dir), load_controller(tmp_path / "whole")
    assert [p.arch for p in resumed.propose(3)] == [p.arch for p in whole.propose(3)]
    for p, q in zip(resumed.propose(3), whole.propose(3), strict=True):
        assert p.log_prob == pytest.approx(q.log_prob, rel=1e-5)


def steps_of(run_dir) -> list[tuple[str, bool]]:
    """Every step's architecture and cache flag, in order."""
    store = EvaluationStore(run_dir / "evaluations.sqlite")
    try:
        assert {s["evaluation"] for s in store.steps()} == {r["id"] for r in store.records()}, "an orphaned child"
        return [(s["arch"], s["cached"]) for s in store.steps()]
    finally:
        store.close()


def same_policy(one, two) -> None:
    one, two = load_controller(one), load_controller(two)
    for p, q in zip(one.propose(3), two.propose(3), strict=True):
        assert p.arch == q.arch and p.log_prob == pytest.approx(q.log_prob, rel=1e-5)


def test_children_stored_after_the_last_checkpoint_are_replayed_to_the_policy(tmp_path, digits_preset, fast_agent):
    space = space_for(digits_preset)
    whole = run_search(digits_preset, fast_agent, evaluations=14, run_name="whole", runs_dir=tmp_path,
                       evaluator=FakeEvaluator(space), progress_bar=False)  # fmt: skip
    killed = shutil.copytree(whole.run_dir, tmp_path / "killed")
    (killed / "summary.json").unlink()  # killed after storing its last child, before its summary and policy
    shutil.rmtree(killed / "policy")
    fresh = FakeEvaluator(space)
    assert resume_search(killed, evaluator=fresh, progress_bar=False).evaluations == 14
    assert fresh.calls == 0
    assert steps_of(killed) == steps_of(whole.run_dir)
    same_policy(killed, whole.run_dir)


def test_an_evaluation_neither_reads_nor_moves_the_global_rng(digits_preset):
    train = dataclasses.replace(digits_preset.train, steps=2, finetune_steps=1)
    evaluator = ScratchEvaluator(dataclasses.replace(digits_preset, train=train))
    arch = evaluator.space.uniform("conv3x3", 0.5)  # pruned: pruning builds new layers too
    results = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        before = torch.get_rng_state()
        results.append(evaluator.evaluate(arch))
        assert torch.equal(torch.get_rng_state(), before), "an evaluation moved the controller's random stream"
    assert (results[0].accuracy, results[0].params) == (results[1].accuracy, results[1].params)


class CrashingScratchEvaluator(ScratchEvaluator):
    """A scratch evaluator that crashes when asked for its ``limit + 1``-th child."""

    def __init__(self, preset, limit: int) -> None:
        super().__init__(preset)
        self.calls, self.limit = 0, limit

    def evaluate(self, arch):
        if self.calls == self.limit:
            raise Crash(f"crashed while evaluating {arch}")
        self.calls += 1
        return super().evaluate(arch)


DETERMINISTIC_DIGITS = ["train.steps=20", "train.finetune_steps=5", "latency.warmup=1", "latency.repeats=3",
                        "reward.kind=accuracy"]  # fmt: skip
"""A small scratch search whose rewards do not depend on timings (latency is measured, but not rewarded)."""


@pytest.mark.slow
def test_an_interrupted_scratch_search_resumes_to_the_uninterrupted_steps(tmp_path):
    preset = load_env_preset("digits", DETERMINISTIC_DIGITS)
    agent = load_agent_preset({"name": "fast", "n_steps": 4, "batch_size": 4, "n_epochs": 2})
    with pytest.raises(Crash):
        run_search(preset, agent, evaluations=10, run_name="crashed", runs_dir=tmp_path,
                   evaluator=CrashingScratchEvaluator(preset, limit=6), progress_bar=False)  # fmt: skip
    resume_search(tmp_path / "crashed", evaluator=ScratchEvaluator(preset), progress_bar=False)
    run_search(preset, agent, evaluations=10, run_name="whole", runs_dir=tmp_path, evaluator=ScratchEvaluator(preset),
               progress_bar=False)  # fmt: skip
    assert steps_of(tmp_path / "crashed") == steps_of(tmp_path / "whole")
    same_policy(tmp_path / "crashed", tmp_path / "whole")


def test_a_finished_search_resumes_to_itself(tmp_path, synthetic_table_preset):
    result = run_search(synthetic_table_preset, "evolution", evaluations=12, runs_dir=tmp_path, progress_bar=False)
    before = history(result.run_dir)
    again = resume_search(result.run_dir, progress_bar=False)
    assert again.evaluations == 12 and history(result.run_dir) == before


@pytest.mark.parametrize("damaged", ["state.pt", "policy.safetensors"])
def test_a_damaged_checkpoint_is_named_and_the_store_stays_readable(crashed_run, damaged):
    run_dir, space = crashed_run
    latest = sorted((run_dir / "checkpoints").glob("step_*"))[-1]
    file = latest / damaged
    file.write_bytes(file.read_bytes()[:100])
    with pytest.raises(ConfigError, match=f"checkpoint {latest} is damaged.*remove"):
        resume_search(run_dir, evaluator=FakeEvaluator(space), progress_bar=False)
    assert len(history(run_dir)[0]) == 9


@pytest.mark.parametrize(("key", "value", "match"), [
    ("rlnas_version", "0.0.1", "written by rlnas '0.0.1'"),
    ("space_fingerprint", "0123456789abcdef", "searched space 0123456789abcdef"),
])  # fmt: skip
def test_an_incompatible_run_is_refused(crashed_run, key, value, match):
    run_dir, space = crashed_run
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["search"][key] = value
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match=match):
        resume_search(run_dir, evaluator=FakeEvaluator(space), progress_bar=False)


def test_resume_needs_a_run_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="written by `rlnas search`"):
        resume_search(tmp_path)


def test_init_policy_starts_from_the_trained_controller(tmp_path, synthetic_table_preset, digits_preset):
    trained = run_search(synthetic_table_preset, "ppo", evaluations=40, runs_dir=tmp_path, run_name="t",
                         progress_bar=False)  # fmt: skip
    # one evaluation: no PPO update happens, so the new run's saved policy is the policy it started from
    start = run_search(synthetic_table_preset, "ppo", evaluations=1, runs_dir=tmp_path, run_name="s",
                       init_policy=trained.run_dir, progress_bar=False)  # fmt: skip
    for p, q in zip(start.controller.probabilities(), trained.controller.probabilities(), strict=True):
        np.testing.assert_allclose(p, q)
    with pytest.raises(ConfigError, match="trained for search space"):
        run_search(digits_preset, "ppo", evaluations=1, runs_dir=tmp_path, run_name="x", init_policy=trained.run_dir,
                   evaluator=FakeEvaluator(space_for(digits_preset)), progress_bar=False)  # fmt: skip


def test_init_policy_reads_a_new_budget_on_the_controllers_scale(tmp_path, digits_preset):
    fake = FakeEvaluator(space_for(digits_preset))
    trained = run_search(digits_preset, "ppo", evaluations=8, runs_dir=tmp_path, run_name="t", evaluator=fake,
                         progress_bar=False)  # fmt: skip
    reference = digits_preset.reward.target_ms
    tighter = dataclasses.replace(digits_preset, reward=dataclasses.replace(digits_preset.reward, target_ms=0.25))
    start = run_search(tighter, "ppo", evaluations=4, runs_dir=tmp_path, run_name="s", evaluator=fake,
                       init_policy=trained.run_dir, progress_bar=False)  # fmt: skip
    config = yaml.safe_load((start.run_dir / "config.yaml").read_text())
    assert config["env"]["reward"]["target_ms"] == reference != 0.25  # the observation's scale: the controller's
    assert config["search"]["target_latency_ms"] == 0.25  # the budget: the new preset's
    assert start.controller.reference_ms == reference
    steps = EvaluationStore(start.run_dir / "evaluations.sqlite").steps()
    assert {s["target"] for s in steps} == {0.25}  # every child was rewarded against the new budget


@pytest.mark.slow
def test_a_search_killed_with_sigkill_resumes_to_its_planned_evaluations(tmp_path):
    common = ["--runs-dir", str(tmp_path), "--no-progress"]
    command = [sys.executable, "-m", "rlnas.cli", "search", "--env", "digits", "--evaluations", "12",
               "--set", "train.steps=5", "--set", "train.finetune_steps=1", "--set", "latency.repeats=3",
               "--agent-set", "n_steps=4", "--agent-set", "batch_size=4", "--run-name", "killed", *common]  # fmt: skip
    store_file = tmp_path / "killed" / "evaluations.sqlite"
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    kill_when_stored(process, store_file, 6)
    killed_at = len(history(tmp_path / "killed")[0])
    assert 6 <= killed_at < 12

    resumed = subprocess.run([sys.executable, "-m", "rlnas.cli", "search", "--resume", str(tmp_path / "killed"),
                              "--no-progress"], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    archs, _ = history(tmp_path / "killed")
    assert len(archs) == len(set(archs)) == 12
