"""Search quality under a budget on NAS-Bench-Macro: PPO (the shipped agents/ppo.yaml) vs regularized evolution
vs random search, each maximising accuracy subject to cost <= target.

Settings (``--settings``): FLOPs budgets at the 25th, 50th and 75th percentile of the table's FLOPs
(``flops25``, ``flops50``, ``flops75``), and a latency budget at the median latency of the space's children
(``latency50``) predicted by rlnas's own latency table of the space (``--latency-table``; built once with
``rlnas latency build --env nas_bench_macro --out bench/results/nas_bench_macro__cpu__t1__b1.json``). The table
has no latency column, so the tabular evaluator takes each child's latency from that table.

Every strategy searches with the same objective (``--objectives``; default ``shipped``: ``reward.kind:
budget`` with the shipped defaults); the harness is bench/search_quality.py's (one ``run_search`` per seed, the
store read in evaluation order, budgets counted in distinct children). The figure is the best accuracy within
the budget after 50/100/200 distinct children, and the share of seeds that found the optimum within the budget
at the largest one (95% Wilson interval). Screens of objectives (PPO only, a seed range not reported):

    python bench/budget_quality.py --strategies ppo --objectives shipped mnasnet below_p1 --first-seed 100 \\
        --seeds 40 --no-record --out /tmp/screen.json
    python bench/budget_quality.py [--seeds 20] [--first-seed 0]      # the recorded comparison
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from _record import record
from search_quality import DEFAULT_TABLE, best_within, one_run, table_text, wilson_interval, within

LATENCY_TABLE = Path(__file__).resolve().parent / "results" / "nas_bench_macro__cpu__t1__b1.json"
FIXED = ["reward.kind=budget", "reward.multiplier=fixed"]
"""The budget reward with a fixed multiplier (``penalty``), as shipped before the adaptive one."""


def fixed(penalty: float, slack: float = 0.0, infeasible: str = "graded") -> list[str]:
    """The budget reward with a fixed ``penalty``, ``slack`` and ``infeasible``."""
    return [*FIXED, f"reward.penalty={penalty}", f"reward.slack={slack}", f"reward.infeasible={infeasible}"]


OBJECTIVES: dict[str, list[str]] = {
    "shipped": ["reward.kind=budget"],
    "graded_p0.1": fixed(0.1),
    "graded_p1": fixed(1.0),
    "below_p1": fixed(1.0, infeasible="below"),
    **{f"absolute_{b}": fixed(b, slack=b) for b in (0.03, 0.07, 0.2)},
    "mnasnet": ["reward.kind=mnasnet", "reward.alpha=-0.07", "reward.beta=-0.07"],
    "hard": ["reward.kind=hard"],
    "graded_p0.03": fixed(0.03),
    **{
        f"lagrange_{lr}_{share}": ["reward.kind=budget", "reward.penalty=0.1", "reward.multiplier=adaptive",
                                   f"reward.multiplier_lr={lr}", f"reward.over_share={share}"]
        for lr in (0.003, 0.01, 0.03) for share in (0.25, 0.5)
    },
    "ent_half_life_100": [*fixed(0.1), "agent.ent_half_life=100"],
    "ent_half_life_50": [*fixed(0.1), "agent.ent_half_life=50"],
    "lr_0.01": [*fixed(0.1), "agent.learning_rate=0.01"],
    "n_steps_16": [*fixed(0.1), "agent.n_steps=16", "agent.batch_size=16"],
    "lagrange_ent50": ["reward.kind=budget", "reward.multiplier=adaptive", "reward.penalty=0.1",
                       "agent.ent_half_life=50"],
    "lagrange_p0.03": ["reward.kind=budget", "reward.multiplier=adaptive", "reward.penalty=0.03"],
    "surrogate_ucb_0.5": ["reward.kind=budget", "agent.surrogate_exploration=0.5"],
    "virtual_8": ["reward.kind=budget", "agent.virtual_rollouts=8"],
    "rank_window_32": ["reward.kind=budget", "agent.rank_window=32"],
    "transform_rank": ["reward.kind=budget", "agent.reward_transform=rank"],
    "clip_1.0": ["reward.kind=budget", "agent.clip_range=1.0"],
    "ent_0.05": ["reward.kind=budget", "agent.ent_coef=0.05"],
    "ent_0.01": ["reward.kind=budget", "agent.ent_coef=0.01"],
    **{f"stall_{n}_{f}": ["reward.kind=budget", f"agent.stall_children={n}", f"agent.stall_temper={f}"]
       for n in (24, 48) for f in (0.5, 0.25)},
}  # fmt: skip
"""Objectives a screen can compare, as env-preset overrides and (``agent.``, PPO only) agent-preset overrides
(``shipped``: whatever the defaults are; ``absolute_b``: TuNAS's absolute-value reward with beta = -b, as
``budget`` with penalty = slack = b; ``lagrange_lr_share``: the adaptive multiplier from 0.1 with
``multiplier_lr`` lr and ``over_share`` share; ``lagrange_ent50`` and ``lagrange_p0.03``: ``lagrange_0.003_0.25``
with ``ent_half_life`` 50, or starting from 0.03, which is the shipped default; ``stall_N_F``: stall tempering
after N children by F, off in the shipped preset)."""
SETTINGS = ("flops25", "flops50", "flops75", "latency50")


def env_overrides(objective: str) -> list[str]:
    """The env-preset overrides of ``objective``."""
    return [o for o in OBJECTIVES[objective] if not o.startswith("agent.")]


def agent_overrides(objective: str) -> tuple[str, ...]:
    """The agent-preset overrides of ``objective`` (its ``agent.`` ones, without the prefix)."""
    return tuple(o.removeprefix("agent.") for o in OBJECTIVES[objective] if o.startswith("agent."))


def space_children(table: Path, latency_table: Path) -> list[dict]:
    """Every key of the table as the network the environment evaluates for it (its representative): accuracy
    (%), MFLOPs and latency predicted by ``latency_table``."""
    from rlnas.config import load_env_preset
    from rlnas.envs.tabular import TabularEvaluator

    overrides = [f"table.path={table}", "reward.kind=budget", *latency_overrides(latency_table, 1.0)]
    preset = load_env_preset("nas_bench_macro", overrides)
    evaluator = TabularEvaluator(preset)
    space, children = evaluator.space, []
    for key in evaluator.table.canonical:
        action = [x for code in key for x in (int(code), 0)]
        result = evaluator.evaluate(space.decode(space.canonical_action(action)))
        children.append(
            {"accuracy": 100 * result.accuracy, "mflops": result.flops / 1e6, "latency_ms": result.latency_ms}
        )
    return children


def latency_overrides(latency_table: Path, target_ms: float) -> list[str]:
    """A latency budget of ``target_ms`` with latencies from ``latency_table``."""
    return [
        "reward.cost=latency",
        f"reward.target_ms={target_ms}",
        "latency.source=table",
        f"latency.table={latency_table}",
    ]


def budget_settings(table: Path, latency_table: Path) -> dict[str, dict]:
    """Per setting: the env overrides that set its budget, the cost and its limit, the optimum within it, and the
    accuracies of every key within it (for ranks)."""
    children = space_children(table, latency_table)
    settings = {}
    for name in SETTINGS:
        cost = "latency_ms" if name.startswith("latency") else "mflops"
        limit = float(
            np.percentile([c[cost] for c in children], int(name.removeprefix("flops").removeprefix("latency")))
        )
        if cost == "mflops":
            overrides = ["reward.cost=flops", f"reward.target_mflops={limit}"]
        else:
            overrides = latency_overrides(latency_table, limit)
        feasible = [c["accuracy"] for c in children if c[cost] <= limit]
        settings[name] = {
            "overrides": [f"table.path={table}", *overrides],
            "cost": cost,
            "limit": limit,
            "optimum": max(feasible),
            "feasible": feasible,
        }
    return settings


def per_seed(children: list[dict], setting: dict, budgets: list[int], step_cap: int) -> dict[int, float]:
    """The best accuracy within the budget after each number of distinct children."""
    return {
        b: best_within(within(children, b, "distinct", step_cap), setting["limit"], setting["cost"]) for b in budgets
    }


def reused_runs(logs: list[Path], budgets: list[int]) -> dict[tuple, dict[int, float]]:
    """The runs an earlier invocation printed (one JSON line each) to ``logs``, by (setting, objective, strategy,
    seed), when they have a figure at every one of ``budgets``: a long bench killed on a busy machine resumes."""
    runs = {}
    for log in logs:
        for line in log.read_text().splitlines():
            if line.startswith('{"setting"'):
                run = json.loads(line)
                best = {int(b): value for b, value in run["best"].items()}
                if set(budgets) <= set(best):
                    runs[(run["setting"], run["objective"], run["strategy"], run["seed"])] = best
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--budgets", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS))
    parser.add_argument("--strategies", nargs="+", default=["ppo", "evolution", "random"])
    parser.add_argument("--objectives", nargs="+", choices=list(OBJECTIVES), default=["shipped"])
    parser.add_argument("--step-cap", type=int, default=20, help="steps per distinct child at most")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--table", type=Path, default=DEFAULT_TABLE)
    parser.add_argument("--latency-table", type=Path, default=LATENCY_TABLE)
    parser.add_argument("--out", type=Path, help="also write every run's figures to this JSON file")
    parser.add_argument("--no-record", action="store_true", help="print only; do not touch BENCHMARKS.md")
    parser.add_argument("--reuse", type=Path, nargs="+", default=[], help="earlier output: its runs are not rerun")
    args = parser.parse_args()
    if not args.latency_table.is_file():
        raise SystemExit(
            f"no latency table at {args.latency_table}: build it with `rlnas latency build --env nas_bench_macro "
            f"--out {args.latency_table}`"
        )
    settings = {k: v for k, v in budget_settings(args.table, args.latency_table).items() if k in args.settings}
    budget, started = max(args.budgets), time.time()
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    results: dict[str, dict[str, dict[str, list[dict[int, float]]]]] = {}
    with tempfile.TemporaryDirectory() as runs_dir, ProcessPoolExecutor(args.workers) as pool:
        done = reused_runs(args.reuse, args.budgets)
        jobs = {
            (name, objective, strategy, seed): done.get((name, objective, strategy, seed)) or pool.submit(
                one_run, strategy, seed, budget, [*s["overrides"], *env_overrides(objective)], runs_dir,
                agent_overrides(objective), args.step_cap, s["optimum"], s["limit"], s["cost"])
            for seed in seeds for name, s in settings.items() for objective in args.objectives
            for strategy in args.strategies
        }  # fmt: skip
        # seed by seed, so that the runs finished so far (printed one per line) are a balanced sample
        for (name, objective, strategy, seed), job in jobs.items():
            best = job if isinstance(job, dict) else per_seed(job.result(), settings[name], args.budgets, args.step_cap)
            results.setdefault(name, {}).setdefault(objective, {}).setdefault(strategy, []).append(best)
            print(json.dumps({"setting": name, "objective": objective, "strategy": strategy, "seed": seed,
                              "best": best}), flush=True)  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps({"args": vars(args) | {"table": str(args.table), "out": str(args.out),
                                        "latency_table": str(args.latency_table)}, "results": results}))  # fmt: skip
    sections, headlines = [], {}
    for name, by_objective in results.items():
        s = settings[name]
        for objective, by_strategy in by_objective.items():
            rows = []
            for strategy, runs in by_strategy.items():
                for b in args.budgets:
                    best = [r[b] for r in runs]
                    ranks = [1 + sum(a > x + 1e-9 for a in s["feasible"]) for x in best]
                    hit = sum(abs(x - s["optimum"]) < 1e-6 for x in best) / len(best)
                    rows.append(
                        (strategy, b, statistics.mean(best), statistics.pstdev(best), hit, statistics.median(ranks))
                    )
                    tag = f"{name}_{objective}_{strategy}" if len(args.objectives) > 1 else f"{name}_{strategy}"
                    headlines[f"{tag}_mean_at_{b}"] = round(statistics.mean(best), 3)
                    if b == budget:
                        low, high = wilson_interval(hit, len(best))
                        headlines[f"{tag}_optimum_rate_at_{b}"] = f"{hit:.2f} ({low:.2f}-{high:.2f})"
            unit = "ms" if s["cost"] == "latency_ms" else "MFLOPs"
            title = (f"**{name}: {s['cost']} <= {s['limit']:.3f} {unit}, objective `{objective}`** ({args.seeds} seeds "
                     f"from {args.first_seed}; optimum within the budget {s['optimum']:.3f}):")  # fmt: skip
            sections.append(table_text(rows, title, seeds=args.seeds))
    for objective in args.objectives:
        for strategy in args.strategies:
            for b in args.budgets:
                values = [statistics.mean(r[b] for r in results[n][objective][strategy]) for n in settings]
                tag = f"{objective}_{strategy}" if len(args.objectives) > 1 else strategy
                headlines[f"average_{tag}_mean_at_{b}"] = round(statistics.mean(values), 3)
    headlines["seconds"] = round(time.time() - started, 1)
    record(
        "budget_quality",
        "Search quality under a budget on NAS-Bench-Macro",
        "PPO (shipped agents/ppo.yaml and reward) vs regularized evolution vs random search, best accuracy within "
        "a FLOPs budget (25th/50th/75th percentile of the table) or a latency budget (median of rlnas's latency "
        "table of the space), by distinct children. Goal: PPO first at every budget and setting, optimum within "
        "the budget at 200 children in >= 90% of seeds.",
        "\n\n".join(sections),
        headlines,
        raw={"results": results},
        append=not args.no_record,
    )


if __name__ == "__main__":
    main()
