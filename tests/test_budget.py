"""A target is a budget: runs report, log, plot and export the most accurate child within it."""

from __future__ import annotations

import dataclasses
import json

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rlnas.budget import Budget, best_children, budget_of_run, run_budget
from rlnas.cheapest import cheapest_child
from rlnas.cli import main
from rlnas.config import ConfigError, RewardConfig, load_agent_preset
from rlnas.export import _default_child
from rlnas.report import report_run
from rlnas.search import read_run_config, run_search
from rlnas.store import EvaluationStore


def child(arch: str, accuracy: float, latency_ms: float, reward: float | None = None, status: str = "ok") -> dict:
    return {"arch": arch, "status": status, "accuracy": accuracy, "latency_ms": latency_ms, "flops": 10**6,
            "params": 1, "reward": accuracy if reward is None else reward}  # fmt: skip


CHILDREN = [
    child("fast", 0.80, 0.5),
    child("best-within", 0.90, 1.0),
    child("over", 0.95, 1.5, reward=0.91),  # the highest reward, but over a 1 ms budget
    child("diverged", 0.99, 0.1, reward=0.0, status="diverged"),
]


def test_the_best_within_a_budget_is_the_most_accurate_child_that_meets_it():
    budget = Budget("latency", 1.0)
    assert [r["arch"] for r in budget.best(CHILDREN, 5)] == ["best-within", "fast"]
    assert budget.share(CHILDREN) == 0.5
    assert budget.closest(CHILDREN)["arch"] == "fast"
    assert [r["arch"] for r in best_children(CHILDREN, None, 2)] == ["over", "best-within"]  # no budget: reward


def test_a_run_has_a_budget_exactly_when_its_reward_has_a_target():
    assert run_budget(RewardConfig(target_ms=2.0)) == Budget("latency", 2.0)
    assert run_budget(RewardConfig(target_ms=2.0), target_ms=3.0) == Budget("latency", 3.0)
    assert run_budget(RewardConfig(kind="mnasnet", cost="flops", target_mflops=50.0)) == Budget("flops", 50.0)
    assert run_budget(RewardConfig(kind="accuracy")) is None
    assert Budget("flops", 50.0).cost_of({"flops": 25_000_000, "latency_ms": 9.0}) == 25.0


@pytest.fixture
def budget_run(tmp_path, digits_preset, fake_evaluator):
    """A random search of 10 children on digits with fake metrics (latency 0.1 ms + MFLOPs), budget 0.3 ms."""
    run_search(digits_preset, load_agent_preset("random"), evaluations=10, run_name="r", runs_dir=tmp_path,
               evaluator=fake_evaluator, progress_bar=False, plot_every=5, target_latency_ms=0.3)  # fmt: skip
    return tmp_path / "r"


def test_a_run_reports_logs_and_exports_the_most_accurate_child_within_its_budget(budget_run, capsys):
    records = EvaluationStore(budget_run / "evaluations.sqlite").records()
    within = [r for r in records if r["latency_ms"] <= 0.3]
    assert 0 < len(within) < len(records), "the fixture needs children on both sides of the budget"
    best = max(within, key=lambda r: r["accuracy"])

    summary = json.loads((budget_run / "summary.json").read_text())
    assert summary["budget"] == {"cost": "latency", "target": 0.3, "unit": "ms"}
    assert summary["within_budget"] == len(within)
    assert summary["best"][0]["arch"] == best["arch"]
    assert all(r["latency_ms"] <= 0.3 for r in summary["best"])
    assert f"{len(within)} of 10 children within it" in (budget_run / "summary.md").read_text()

    events = EventAccumulator(str(budget_run)).Reload()
    assert events.Scalars("search/best_feasible_accuracy")[-1].value == pytest.approx(best["accuracy"])
    assert events.Scalars("search/within_budget_share")[-1].value == pytest.approx(len(within) / 10)

    report = report_run(budget_run)
    assert report.budget == Budget("latency", 0.3) and report.within_budget == len(within)
    assert main(["report", "--run", str(budget_run)]) == 0
    assert f"budget <= 0.3 ms: {len(within)} of 10 children within it" in capsys.readouterr().out

    record, selected = _default_child(budget_run, records, budget_of_run(read_run_config(budget_run)))
    assert record["arch"] == best["arch"] and "within the budget <= 0.3 ms" in selected


def test_a_run_where_nothing_met_the_budget_says_so_and_names_the_cheapest(tmp_path, digits_preset, fake_evaluator):
    run_search(digits_preset, load_agent_preset("random"), evaluations=4, run_name="r", runs_dir=tmp_path,
               evaluator=fake_evaluator, progress_bar=False, target_latency_ms=0.01)  # fmt: skip
    records = EvaluationStore(tmp_path / "r" / "evaluations.sqlite").records()
    cheapest = min(records, key=lambda r: r["latency_ms"])
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["best"] == [] and summary["within_budget"] == 0
    assert summary["closest"]["arch"] == cheapest["arch"]
    assert f"NO child met it; the cheapest was `{cheapest['arch']}`" in (tmp_path / "r" / "summary.md").read_text()
    with pytest.raises(Exception, match=r"no child of .* met its budget <= 0.01 ms"):
        _default_child(tmp_path / "r", records, budget_of_run(read_run_config(tmp_path / "r")))


def test_a_target_below_the_cheapest_child_is_refused_before_the_run_starts(tmp_path, digits_preset):
    space_preset = dataclasses.replace(digits_preset, evaluator="scratch")
    from rlnas.envs.evaluators import space_for

    space = space_for(space_preset)
    cheapest = cheapest_child(space_preset, space, Budget("flops", 1.0))
    narrowest = min(space.keep_ratios)
    assert cheapest.arch.keeps == (narrowest,) * space.num_layers
    flops_preset = dataclasses.replace(space_preset, reward=RewardConfig(cost="flops", target_mflops=cheapest.cost / 2))
    with pytest.raises(ConfigError, match=r"no child of this space can meet the budget <= .* MFLOPs: the cheapest"):
        run_search(flops_preset, load_agent_preset("random"), evaluations=2, run_name="r", runs_dir=tmp_path,
                   progress_bar=False)  # fmt: skip
    assert not (tmp_path / "r").exists(), "a refused target leaves no run folder behind"
