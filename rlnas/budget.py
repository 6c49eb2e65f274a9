"""A run's budget: the cost a child may have, and the most accurate children within it.

A latency or FLOPs target is a budget: what a run reports and exports is the most accurate child whose cost
(latency in ms, or MFLOPs) is at most the target, whatever reward the controller learned from. A run without a
target (``reward.kind: accuracy`` or ``amc``) has no budget: its best child is the one with the highest reward.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from rlnas.config import RewardConfig, load_env_preset

Record = dict[str, Any]


@dataclass(frozen=True)
class Budget:
    """At most ``target`` of ``cost``: ``latency`` (ms) or ``flops`` (MFLOPs)."""

    cost: Literal["latency", "flops"]
    target: float

    @property
    def unit(self) -> str:
        """The cost's unit, for messages and tables."""
        return "ms" if self.cost == "latency" else "MFLOPs"

    def cost_of(self, record: Record) -> float:
        """The child's cost in the budget's unit."""
        return float(record["latency_ms"]) if self.cost == "latency" else record["flops"] / 1e6

    def within(self, record: Record) -> bool:
        """Whether the child was evaluated successfully and costs at most the target."""
        return record["status"] == "ok" and self.cost_of(record) <= self.target

    def best(self, records: Iterable[Record], k: int = 1) -> list[Record]:
        """The ``k`` most accurate children within the budget (earliest first on ties)."""
        feasible = [r for r in records if self.within(r)]
        return sorted(feasible, key=lambda r: -r["accuracy"])[:k]

    def closest(self, records: Iterable[Record]) -> Record | None:
        """The cheapest successfully evaluated child: the nearest to the budget when none meets it."""
        ok = [r for r in records if r["status"] == "ok"]
        return min(ok, key=self.cost_of) if ok else None

    def count(self, records: Iterable[Record]) -> int:
        """How many children are within the budget."""
        return sum(self.within(r) for r in records)

    def share(self, records: Iterable[Record]) -> float:
        """The fraction of children within the budget (0 for no children)."""
        records = list(records)
        return self.count(records) / len(records) if records else 0.0

    def describe(self) -> str:
        """``"<= 1.5 ms"``, for summaries."""
        return f"<= {self.target:g} {self.unit}"


def run_budget(reward: RewardConfig, target_ms: float | None = None) -> Budget | None:
    """The budget of a run with ``reward`` (``target_ms`` overrides the preset's latency target), or None."""
    if reward.kind in ("accuracy", "amc"):
        return None
    if reward.cost == "flops":
        return Budget("flops", reward.target_mflops) if reward.target_mflops else None
    target = target_ms or reward.target_ms
    return Budget("latency", target) if target else None


def best_children(records: Iterable[Record], budget: Budget | None, k: int = 5) -> list[Record]:
    """The ``k`` children a run reports: the most accurate within ``budget``, or the highest rewards without one."""
    records = list(records)
    if budget is None:
        return sorted(records, key=lambda r: -r["reward"])[:k]
    return budget.best(records, k)


def budget_of_run(resolved: dict[str, Any]) -> Budget | None:
    """The budget of a run from its resolved configuration (``config.yaml``: ``env``, ``search``)."""
    preset = load_env_preset(resolved["env"])
    return run_budget(preset.reward, resolved.get("search", {}).get("target_latency_ms"))
