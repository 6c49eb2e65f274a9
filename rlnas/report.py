"""The accuracy-latency trade-off of a run: its Pareto front, a scatter plot of it, and tables.

A child is on the front when no other child is at least as accurate and at least as fast and better in one of
the two. Runs without latency (tabular benchmarks without a latency column) use FLOPs as the cost instead. A run
with a budget draws it as a vertical line and stars the most accurate child within it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from matplotlib.figure import Figure

from rlnas.budget import Budget, budget_of_run
from rlnas.store import EvaluationStore

COST_LABELS = {"latency_ms": "latency (ms)", "flops": "FLOPs"}


def cost_key(records: Iterable[dict[str, Any]]) -> str:
    """``latency_ms`` when the children have a measured latency, else ``flops``."""
    return "latency_ms" if any(r["latency_ms"] > 0 for r in records if r["status"] == "ok") else "flops"


def pareto_front(records: Iterable[dict[str, Any]], cost: str | None = None) -> list[dict[str, Any]]:
    """The non-dominated evaluated children by (accuracy up, ``cost`` down), cheapest first.

    Diverged children are left out; of children with identical metrics the earliest is kept. ``cost``
    defaults to :func:`cost_key`.
    """
    ok = [r for r in records if r["status"] == "ok"]
    cost = cost or cost_key(ok)
    front: list[dict[str, Any]] = []
    for r in sorted(ok, key=lambda r: (r[cost], -r["accuracy"])):  # stable: earliest first on ties
        if not front or r["accuracy"] > front[-1]["accuracy"]:
            front.append(r)
    return front


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """Reward, accuracy, latency, FLOPs, parameters and architecture of ``rows`` as a Markdown table."""
    lines = [
        "| # | reward | accuracy | latency (ms) | MFLOPs | params | architecture |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    lines += [
        f"| {i} | {r['reward']:.4f} | {r['accuracy']:.4f} | {r['latency_ms']:.3f} | {r['flops'] / 1e6:.3f} "
        f"| {r['params']} | `{r['arch']}` |"
        for i, r in enumerate(rows, 1)
    ]
    return "\n".join(lines)


def plot_pareto(records: list[dict[str, Any]], title: str = "", budget: Budget | None = None) -> Figure:
    """Accuracy against cost of every evaluated child, the Pareto front highlighted and the best child starred:
    the most accurate within ``budget`` (drawn as a vertical line), or the best reward without one."""
    ok = [r for r in records if r["status"] == "ok"]
    if not ok:
        raise ValueError("no child was evaluated successfully: nothing to plot")
    cost = cost_key(ok)
    front = pareto_front(ok, cost)
    within = budget.best(ok) if budget else []
    best, best_label = (
        (within[0], "best within budget") if within else (max(ok, key=lambda r: r["reward"]), "best reward")
    )
    fig = Figure(figsize=(6.4, 4.8), layout="constrained")
    ax = fig.subplots()
    ax.scatter([r[cost] for r in ok], [r["accuracy"] for r in ok], s=14, c="0.6", label=f"children ({len(ok)})")
    ax.plot([r[cost] for r in front], [r["accuracy"] for r in front], "o-", c="tab:red", ms=5, drawstyle="steps-post",
            label=f"Pareto front ({len(front)})")  # fmt: skip
    ax.scatter([best[cost]], [best["accuracy"]], marker="*", s=160, c="tab:blue", zorder=3, label=best_label)
    line = _budget_line(budget, cost)
    if line is not None:
        ax.axvline(line, ls="--", c="tab:green", label=f"budget {budget.describe()}")
    ax.set_xlabel(COST_LABELS[cost])
    ax.set_ylabel("validation accuracy")
    ax.set_title(title or f"{len(records)} evaluations")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    return fig


def _budget_line(budget: Budget | None, cost: str) -> float | None:
    """Where ``budget`` falls on the plot's cost axis (None when it is in another cost)."""
    if budget is None:
        return None
    if budget.cost == "latency":
        return budget.target if cost == "latency_ms" else None
    return budget.target * 1e6 if cost == "flops" else None


@dataclass(frozen=True)
class RunReport:
    """A run's Pareto front (cheapest first), the cost it used, its budget with the children within it, and
    where the plot was written."""

    front: list[dict[str, Any]]
    cost: str
    evaluated: int
    plot: Path
    budget: Budget | None = None
    within_budget: int = 0


def report_run(run_dir: str | Path, plot: str | Path | None = None) -> RunReport:
    """The Pareto front of a run's evaluations, with its plot written as a PNG (default ``run_dir/pareto.png``)."""
    run_dir = Path(run_dir)
    store_path = run_dir / "evaluations.sqlite"
    if not store_path.is_file():
        raise FileNotFoundError(f"no evaluations.sqlite in {run_dir}: give a run folder written by `rlnas search`")
    store = EvaluationStore(store_path)
    try:
        records = store.records()
    finally:
        store.close()
    cost = cost_key(records)
    config = run_dir / "config.yaml"
    budget = budget_of_run(yaml.safe_load(config.read_text())) if config.is_file() else None
    figure = plot_pareto(records, title=run_dir.name, budget=budget)
    plot = Path(plot) if plot else run_dir / "pareto.png"
    plot.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(plot, dpi=120)
    within = budget.count(records) if budget else 0
    return RunReport(pareto_front(records, cost), cost, len(records), plot, budget, within)
