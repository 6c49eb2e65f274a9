"""The Pareto front, the run report and the TensorBoard views (scatter, top-5 table, histograms, HParams)."""

from __future__ import annotations

import csv
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rlnas.cli import main
from rlnas.config import load_agent_preset
from rlnas.report import pareto_front, report_run
from rlnas.search import run_search
from rlnas.store import EvaluationStore


def dominates(a: dict, b: dict, cost: str = "latency_ms") -> bool:
    """``a`` is at least as accurate and as cheap as ``b``, and better in one of the two."""
    at_least = a["accuracy"] >= b["accuracy"] and a[cost] <= b[cost]
    return at_least and (a["accuracy"] > b["accuracy"] or a[cost] < b[cost])


def record(i: int, accuracy: float, latency_ms: float, status: str = "ok") -> dict:
    return {"id": i, "arch": f"a{i}", "status": status, "accuracy": accuracy, "latency_ms": latency_ms,
            "flops": 1000 * (i + 1), "params": 10, "reward": accuracy}  # fmt: skip


def check_front(front: list[dict], records: list[dict], cost: str = "latency_ms") -> None:
    ok = [r for r in records if r["status"] == "ok"]
    for f, r in itertools.product(front, ok):
        assert not dominates(r, f, cost), f"{r} dominates front member {f}"
    for r in ok:
        assert r in front or any(dominates(f, r, cost) or (f[cost], f["accuracy"]) == (r[cost], r["accuracy"])
                                 for f in front), f"{r} is neither on the front nor dominated"  # fmt: skip
    assert [f[cost] for f in front] == sorted(f[cost] for f in front)


def test_pareto_front_of_a_small_set():
    records = [record(0, 0.9, 3.0), record(1, 0.8, 1.0), record(2, 0.85, 2.0), record(3, 0.7, 2.5),
               record(4, 0.95, 3.0), record(5, 0.99, 0.5, "diverged"), record(6, 0.8, 1.0)]  # fmt: skip
    assert [r["id"] for r in pareto_front(records)] == [1, 2, 4]  # 0 and 3 dominated, 5 diverged, 6 a repeat of 1


@given(st.lists(st.tuples(st.integers(0, 20), st.integers(1, 20)), min_size=1, max_size=30))
def test_pareto_front_members_are_exactly_the_non_dominated(points):
    records = [record(i, acc / 20, float(lat)) for i, (acc, lat) in enumerate(points)]
    check_front(pareto_front(records), records)


def test_without_latency_the_front_uses_flops():
    records = [record(0, 0.9, 0.0), record(1, 0.8, 0.0), record(2, 0.7, 0.0)]  # flops 1000, 2000, 3000
    assert [r["id"] for r in pareto_front(records)] == [0]


@pytest.fixture(scope="module")
def real_run(tmp_path_factory, _digits_preset):
    """A real random search of 6 children on digits, views refreshed every 4 children (and at the end)."""
    runs = tmp_path_factory.mktemp("runs")
    run_search(_digits_preset, load_agent_preset("random"), evaluations=6, run_name="real", runs_dir=runs,
               progress_bar=False, plot_every=4)  # fmt: skip
    return runs / "real"


def test_report_of_a_real_run(real_run, capsys):
    from rlnas.store import EvaluationStore

    records = EvaluationStore(real_run / "evaluations.sqlite").records()
    report = report_run(real_run)
    assert report.cost == "latency_ms" and report.evaluated == 6 and report.front
    check_front(report.front, records)
    assert report.plot == real_run / "pareto.png" and report.plot.read_bytes()[:4] == b"\x89PNG"

    assert main(["report", "--run", str(real_run), "--plot", str(real_run / "p.png")]) == 0
    out = capsys.readouterr().out
    assert f"{len(report.front)} of 6 evaluations" in out and (real_run / "p.png").is_file()
    assert all(f"`{r['arch']}`" in out for r in report.front)


def test_tensorboard_views_of_a_real_run(real_run):
    sizes = {"images": 0, "histograms": 0, "tensors": 0, "scalars": 0}
    events = EventAccumulator(str(real_run), size_guidance=sizes).Reload()
    assert [e.step for e in events.Images("search/pareto")] == [4, 6], "every 4 children, and at the end"
    top5 = events.Tensors("search/top5/text_summary")
    assert [e.step for e in top5] == [4, 6]
    text = top5[-1].tensor_proto.string_val[0].decode()
    records = EvaluationStore(real_run / "evaluations.sqlite").records()
    within = sum(r["latency_ms"] <= r["target"] for r in records)  # the table lists the best within the budget
    assert text.count("`") == 2 * min(5, within) and "Operator indices" in text
    for layer in range(4):
        for kind in ("operator", "keep_ratio"):
            histograms = events.Histograms(f"arch/layer_{layer}/{kind}")
            assert [h.step for h in histograms] == [4, 6]
            assert [h.histogram_value.num for h in histograms] == [4, 2], "the children since the last refresh"
    keep = events.Histograms("arch/layer_0/keep_ratio")[0].histogram_value
    assert 0.25 <= keep.min <= keep.max <= 1.0
    hparams = events.PluginTagToContent("hparams")
    assert b"search/best_reward" in hparams["_hparams_/experiment"], "the metric of the HParams tab"
    assert (
        b"env/train.steps" in hparams["_hparams_/session_start_info"]
        and b"agent/algo" in hparams["_hparams_/session_start_info"]
    )
    with open(real_run / "progress.csv") as f:
        assert len(list(csv.DictReader(f))) == 6, "one CSV row per child, none for the views"


def test_views_wait_for_a_successful_child(tmp_path):
    from stable_baselines3.common.logger import configure

    from rlnas.agents.callbacks import ChildLogger

    logger = configure(str(tmp_path), ["tensorboard"])
    child_logger = ChildLogger(logger, 3, progress_bar=False, operators=["conv3x3", "skip"], plot_every=1)
    diverged = {"status": "diverged", "reward": 0.0, "accuracy": 0.0, "latency_ms": 0.0, "flops": 0, "params": 0,
                "cached": False}  # fmt: skip
    child_logger.log({**diverged, "arch": "conv3x3@1.0|skip@0.5"})
    ok = {"status": "ok", "accuracy": 0.5, "latency_ms": 1.0, "train_s": 1.0, "cost": 1.0, "target": 1.0, "exponent": 0}
    child_logger.log({**diverged, **ok, "arch": "skip@1.0|skip@0.5"})
    child_logger.close()
    logger.close()
    events = EventAccumulator(str(tmp_path), size_guidance={"images": 0, "tensors": 0, "histograms": 0}).Reload()
    assert [e.step for e in events.Images("search/pareto")] == [2], "no plot while every child had diverged"
    assert [e.step for e in events.Tensors("search/top5/text_summary")] == [1, 2]
    assert [h.histogram_value.sum for h in events.Histograms("arch/layer_0/operator")] == [0.0, 1.0]


def test_cache_hits_are_written_with_the_next_dump(tmp_path):
    from stable_baselines3.common.logger import configure

    from rlnas.agents.callbacks import ChildLogger

    logger = configure(str(tmp_path), ["csv"])
    child_logger = ChildLogger(logger, 5, progress_bar=False, plot_every=100)
    child = {"status": "ok", "accuracy": 0.5, "latency_ms": 1.0, "flops": 1, "params": 1, "train_s": 1.0,
             "cost": 1.0, "target": 1.0, "exponent": 0}  # fmt: skip
    a, b = "skip@1.0", "skip@0.5"
    steps = [(a, 0.5, False), (a, 0.5, True), (a, 0.5, True), (b, 0.4, False), (b, 0.4, True)]
    for arch, reward, cached in steps:
        child_logger.log({**child, "arch": arch, "reward": reward, "cached": cached})
    child_logger.close()
    logger.close()
    with open(tmp_path / "progress.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["search/cache_hits"]) for r in rows] == [0, 2, 3], "a row per new child, then the last hit"
    assert [int(r["search/evaluations"]) for r in rows] == [1, 2, 2]
