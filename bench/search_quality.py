"""Search quality on NAS-Bench-Macro: PPO (the shipped agents/ppo.yaml) vs regularized evolution vs random search.

Every strategy runs through ``rlnas.search.run_search`` (same environment, reward, store and logging) with
``--seeds`` seeds and the largest budget; no strategy's settings depend on the budget, so the best child after
50 and 100 evaluations is read from the same run's store, in evaluation order. Two ways to count the budget,
from the same runs:
* distinct children (the headline figures): rlnas' own budget (``run_search(evaluations=...)``): a repeated
  child is answered from the run's store at no cost, so the budget is the number of DISTINCT children evaluated;
  a run stops at the largest budget of distinct children or at ``--step-cap`` times it in steps.
* per step (``*_per_step`` figures): every step counts as an evaluation, repeats included.

Two settings:
* unconstrained: reward = the table's accuracy; the optimum is 22212220 (93.127).
* constrained: MnasNet soft reward on the table's FLOPs, target = the median FLOPs of the table; the figure is
  the best accuracy among evaluated children that meet the target.

    python bench/search_quality.py [--seeds 40] [--budgets 50 100 200] [--step-cap 20] [--workers 2] [--table PATH]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from _record import record

DEFAULT_TABLE = Path(__file__).resolve().parents[2] / "shared/benchmarks/nas-bench-macro/nas-bench-macro_cifar10.json"
STRATEGIES = ("ppo", "evolution", "random")


class OptimumFound(Exception):
    """Raised by :class:`StopAfterOptimum` to end a search early: no figure can change any more."""


class StopAfterOptimum:
    """Pass evaluations through; once the (feasible) optimum has been evaluated, end the search at the next new
    child: every later figure would be the optimum anyway, so stopping only saves time. ``max_cost``: at most
    this much of ``cost`` (``mflops`` or ``latency_ms``) is feasible."""

    def __init__(self, evaluator, optimum: float, max_cost: float | None, cost: str = "mflops") -> None:
        self.evaluator, self.optimum, self.max_cost, self.cost = evaluator, optimum, max_cost, cost
        self.space, self.settings = evaluator.space, evaluator.settings
        self.found = False

    def evaluate(self, arch):
        if self.found:
            raise OptimumFound
        result = self.evaluator.evaluate(arch)
        feasible = self.max_cost is None or costs(result.flops, result.latency_ms)[self.cost] <= self.max_cost
        self.found = feasible and abs(100 * result.accuracy - self.optimum) < 1e-6
        return result


def costs(flops: float, latency_ms: float) -> dict[str, float]:
    """A child's costs a budget may limit: ``mflops`` and ``latency_ms``."""
    return {"mflops": flops / 1e6, "latency_ms": latency_ms}


def one_run(
    strategy: str,
    seed: int,
    budget: int,
    overrides: list[str],
    runs_dir: str,
    agent_overrides: tuple[str, ...] = (),
    step_cap: int = 20,
    optimum: float = 100.0,
    max_cost: float | None = None,
    cost: str = "mflops",
) -> list[dict]:
    """The child of every step of one search, in order (arch, accuracy, MFLOPs, latency; repeats included): the search
    runs to ``budget`` distinct children (rlnas' own budget: repeats are answered from the run's store) or
    ``step_cap * budget`` steps, or until the first new child after the feasible ``optimum`` was found."""
    import torch

    torch.set_num_threads(1)
    torch.distributions.Distribution.set_default_validate_args(False)  # speed only: SB3's samples are valid
    from rlnas.config import load_agent_preset, load_env_preset
    from rlnas.envs.evaluator_factory import make_evaluator
    from rlnas.search import run_search
    from rlnas.store import EvaluationStore

    env = load_env_preset("nas_bench_macro", overrides)
    agent = load_agent_preset(strategy, agent_overrides)
    name = f"{strategy}_{seed}_{abs(hash((*overrides, *agent_overrides)))}"
    evaluator = StopAfterOptimum(make_evaluator(env, "cpu"), optimum, max_cost, cost)
    try:
        run_search(env, agent, evaluations=budget, max_steps=step_cap * budget, runs_dir=runs_dir, run_name=name,
                   seed=seed, progress_bar=False, evaluator=evaluator, plot_every=budget)  # fmt: skip
        # plot_every: the TensorBoard views are drawn once, at the end: nobody looks at them here, and a Pareto
        # figure every 16 children (~0.2 s each) added ~2.5 s to each 200-child run
    except OptimumFound:
        pass
    store = EvaluationStore(Path(runs_dir) / name / "evaluations.sqlite")
    records = {r["id"]: r for r in store.records()}
    children = [records[s["evaluation"]] for s in store.steps()]
    store.close()
    return [{"arch": c["arch"], "accuracy": c["accuracy"], **costs(c["flops"], c["latency_ms"])} for c in children]


def within(children: list[dict], budget: int, counting: str, step_cap: int) -> list[dict]:
    """The children a search evaluated within ``budget``: steps (``per_step``), or ``distinct`` children (capped
    at ``step_cap * budget`` steps)."""
    if counting == "per_step":
        return children[:budget]
    seen: set[str] = set()
    for i, child in enumerate(children[: step_cap * budget]):
        seen.add(child["arch"])
        if len(seen) == budget:
            return children[: i + 1]
    return children[: step_cap * budget]


def best_within(children: list[dict], max_cost: float | None, cost: str = "mflops") -> float:
    """The best accuracy (%) among ``children`` with at most ``max_cost`` of ``cost`` (0 when none)."""
    feasible = [c["accuracy"] for c in children if max_cost is None or c[cost] <= max_cost]
    return 100 * max(feasible, default=0.0)


def summarise(
    runs: dict[str, list[list[dict]]],
    budgets,
    max_cost,
    optimum,
    accuracies,
    counting="distinct",
    step_cap=20,
    cost="mflops",
) -> tuple[list, dict]:
    """Table rows ``(strategy, budget, mean, std, optimum rate, median rank)`` and headline figures."""
    rows, figures = [], {}
    suffix = "" if counting == "distinct" else "_per_step"
    for strategy, per_seed in runs.items():
        for budget in budgets:
            spent = [within(children, budget, counting, step_cap) for children in per_seed]
            best = [best_within(children, max_cost, cost) for children in spent]
            ranks = [1 + sum(a > b + 1e-9 for a in accuracies) for b in best]
            hit = sum(abs(b - optimum) < 1e-6 for b in best) / len(best)
            mean, std = statistics.mean(best), statistics.pstdev(best)
            rows.append((strategy, budget, mean, std, hit, statistics.median(ranks)))
            figures[f"{strategy}_mean_at_{budget}{suffix}"] = round(mean, 3)
            figures[f"{strategy}_optimum_rate_at_{budget}{suffix}"] = round(hit, 2)
            figures[f"{strategy}_median_rank_at_{budget}{suffix}"] = statistics.median(ranks)
    return rows, figures


def wilson_interval(rate: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95% by default) of a success ``rate`` observed in ``n`` trials."""
    centre = (rate + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def table_text(rows: list, title: str, first: str = "strategy", seeds: int | None = None) -> str:
    """A markdown table of :func:`summarise` rows; with ``seeds``, the optimum rate's 95% interval too (one
    40-seed rate of 85% is compatible with anything from 71% to 93%)."""
    found = "optimum found" + (" (95% interval)" if seeds else "")
    lines = [title, "", f"| {first} | budget | best accuracy (mean ± std) | {found} | median rank |",
             "|---|---:|---:|---:|---:|"]  # fmt: skip
    for s, b, m, sd, h, r in rows:
        interval = " ({:.0%}-{:.0%})".format(*wilson_interval(h, seeds)) if seeds else ""
        lines.append(f"| {s} | {b} | {m:.3f} ± {sd:.3f} | {h:.0%}{interval} | {r:g} |")
    return "\n".join(lines)


GOALS = (("", "mean_at_50"), ("", "optimum_rate_at_100"), ("constrained_", "optimum_rate_at_200"))
"""The figures recorded as headlines (prefix, figure), for every strategy: what the goal is judged on."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=40)  # one 20-seed draw moves by +-15 points
    parser.add_argument("--budgets", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--step-cap", type=int, default=20, help="steps per distinct child at most")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--table", type=Path, default=DEFAULT_TABLE)
    args = parser.parse_args()
    table = json.loads(args.table.read_text())
    accuracies = [r["mean_acc"] for r in table.values()]
    median_mflops = statistics.median(r["flops"] for r in table.values()) / 1e6
    feasible = [r["mean_acc"] for r in table.values() if r["flops"] / 1e6 <= median_mflops]
    settings = {
        "unconstrained": ([f"table.path={args.table}"], None, max(accuracies), accuracies),
        "constrained": (
            [f"table.path={args.table}", "reward.kind=mnasnet", "reward.cost=flops",
             f"reward.target_mflops={median_mflops}"],
            median_mflops, max(feasible), feasible,
        ),
    }  # fmt: skip
    budget, started = max(args.budgets), time.time()
    sections, headlines = [], {}
    with tempfile.TemporaryDirectory() as runs_dir, ProcessPoolExecutor(args.workers) as pool:
        for setting, (overrides, max_mflops, optimum, pool_accuracies) in settings.items():
            limits = (args.step_cap, optimum, max_mflops)
            jobs = {s: [pool.submit(one_run, s, seed, budget, overrides, runs_dir, (), *limits)
                        for seed in range(args.seeds)] for s in STRATEGIES}  # fmt: skip
            runs = {s: [job.result() for job in js] for s, js in jobs.items()}
            prefix = "" if setting == "unconstrained" else "constrained_"
            limit = f", FLOPs <= {median_mflops:.1f} M (median)" if max_mflops else ""
            for counting, what in (("distinct", f"distinct children, at most {args.step_cap} steps each"),
                                   ("per_step", "every step counts, repeats included")):  # fmt: skip
                rows, figures = summarise(runs, args.budgets, max_mflops, optimum, pool_accuracies, counting,
                                          args.step_cap)  # fmt: skip
                headlines |= {prefix + k: v for k, v in figures.items()}
                title = f"**{setting}, budget = {what}** ({args.seeds} seeds; optimum {optimum:.3f}{limit}):"
                sections.append(table_text(rows, title, seeds=args.seeds))
    goals = [f"{p}{s}_{m}" for p, m in GOALS for s in STRATEGIES]  # the rest of the figures are in the tables
    record(
        "search_quality",
        "Search quality on NAS-Bench-Macro",
        "PPO (shipped agents/ppo.yaml) vs regularized evolution vs random search on NAS-Bench-Macro's table, "
        "by distinct children. Goal: PPO first at 50 children, optimum found by 100 in >= 90% of seeds.",
        "\n\n".join(sections),
        {k: headlines[k] for k in goals if k in headlines} | {"seconds": round(time.time() - started, 1)},
        raw=headlines,
    )


if __name__ == "__main__":
    main()
