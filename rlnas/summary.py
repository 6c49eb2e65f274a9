"""A finished run's ``summary.json`` and ``summary.md``: what it found, judged by its budget.

With a budget the run reports the most accurate children within it (and, when none met it, says so and names the
cheapest child); without one, the children with the highest rewards.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rlnas.budget import Budget, best_children

_FIELDS = ("arch", "reward", "accuracy", "latency_ms", "flops", "params")


def budget_verdict(records: list[dict[str, Any]], budget: Budget | None) -> str:
    """One sentence on the budget: how many children met it, or that none did and which came closest."""
    if budget is None:
        return "No budget (no latency or FLOPs target): children are ranked by reward."
    within = budget.count(records)
    if within:
        return f"Budget {budget.describe()}: {within} of {len(records)} children within it."
    closest = budget.closest(records)
    if closest is None:
        return f"Budget {budget.describe()}: no child was evaluated successfully."
    return (
        f"Budget {budget.describe()}: NO child met it; the cheapest was `{closest['arch']}` at "
        f"{budget.cost_of(closest):.4g} {budget.unit} (accuracy {closest['accuracy']:.4f}). Search again with a "
        "larger target, or export that child with --arch."
    )


def write_summary(
    run_dir: Path,
    records: list[dict[str, Any]],
    steps: int,
    settings: dict[str, Any],
    elapsed: float,
    budget: Budget | None,
) -> list[dict[str, Any]]:
    """Write the run's summary files and return the children it reports (at most five)."""
    best = best_children(records, budget, 5)
    summary = {
        **settings,
        "evaluated": len(records),
        "steps": steps,
        "diverged": sum(r["status"] != "ok" for r in records),
        "seconds": round(elapsed, 1),
        "budget": None if budget is None else {"cost": budget.cost, "target": budget.target, "unit": budget.unit},
        "within_budget": None if budget is None else budget.count(records),
        "best": [{k: r[k] for k in _FIELDS} for r in best],
    }
    closest = budget.closest(records) if budget is not None and not best else None
    if closest is not None:
        summary["closest"] = {k: closest[k] for k in _FIELDS}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    heading = "most accurate within the budget" if budget is not None else "highest rewards"
    lines = [
        f"# Search summary: {run_dir.name}",
        "",
        f"{len(records)} children evaluated by {settings['strategy']} in {steps} steps ({elapsed:.0f} s).",
        budget_verdict(records, budget),
        "",
    ]
    if best:
        lines += [
            f"Children reported ({heading}):",
            "",
            "| rank | val. accuracy | latency (ms) | MFLOPs | params | reward | architecture |",
            "|---:|---:|---:|---:|---:|---:|---|",
        ]
        lines += [
            f"| {i} | {r['accuracy']:.4f} | {r['latency_ms'] or 'n/a':.4} | {r['flops'] / 1e6:.2f} | {r['params']} "
            f"| {r['reward']:.4f} | `{r['arch']}` |"
            for i, r in enumerate(best, 1)
        ]
    (run_dir / "summary.md").write_text("\n".join(lines) + "\n")
    return best
