"""Search quality on NAS-Bench-Macro: PPO (the shipped agents/ppo.yaml) vs regularized evolution vs random search.

Every strategy runs through ``rlnas.search.run_search`` (same environment, reward, store and logging) with
``--seeds`` seeds and the largest budget; no strategy's settings depend on the budget, so the best child after
50 and 100 evaluations is read from the same run's store, in evaluation order. Every step counts as an
evaluation, repeats included.

Two settings:
* unconstrained: reward = the table's accuracy; the optimum is 22212220 (93.127).
* constrained: MnasNet soft reward on the table's FLOPs, target = the median FLOPs of the table; the figure is
  the best accuracy among evaluated children that meet the target.

    python bench/search_quality.py [--seeds 20] [--budgets 50 100 200] [--workers 2] [--table PATH]
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

from _record import record

DEFAULT_TABLE = Path(__file__).resolve().parents[2] / "shared/benchmarks/nas-bench-macro/nas-bench-macro_cifar10.json"
STRATEGIES = ("ppo", "evolution", "random")


def one_run(
    strategy: str, seed: int, budget: int, overrides: list[str], runs_dir: str, agent_overrides: tuple[str, ...] = ()
) -> list[dict]:
    """The evaluated children of one search, in order (accuracy and MFLOPs)."""
    import torch

    torch.set_num_threads(1)
    from rlnas.config import load_agent_preset, load_env_preset
    from rlnas.search import run_search
    from rlnas.store import EvaluationStore

    env = load_env_preset("nas_bench_macro", overrides)
    agent = load_agent_preset(strategy, agent_overrides)
    name = f"{strategy}_{seed}_{abs(hash((*overrides, *agent_overrides)))}"
    result = run_search(env, agent, evaluations=budget, runs_dir=runs_dir, run_name=name, seed=seed,
                        progress_bar=False)  # fmt: skip
    store = EvaluationStore(result.run_dir / "evaluations.sqlite")
    children = [{"accuracy": r["accuracy"], "mflops": r["flops"] / 1e6} for r in store.records()]
    store.close()
    return children


def best_within(children: list[dict], budget: int, max_mflops: float | None) -> float:
    feasible = [c["accuracy"] for c in children[:budget] if max_mflops is None or c["mflops"] <= max_mflops]
    return 100 * max(feasible, default=0.0)


def summarise(runs: dict[str, list[list[dict]]], budgets, max_mflops, optimum, accuracies) -> tuple[list, dict]:
    rows, figures = [], {}
    for strategy, per_seed in runs.items():
        for budget in budgets:
            best = [best_within(children, budget, max_mflops) for children in per_seed]
            ranks = [1 + sum(a > b + 1e-9 for a in accuracies) for b in best]
            hit = sum(abs(b - optimum) < 1e-6 for b in best) / len(best)
            mean, std = statistics.mean(best), statistics.pstdev(best)
            rows.append((strategy, budget, mean, std, hit, statistics.median(ranks)))
            figures[f"{strategy}_mean_at_{budget}"] = round(mean, 3)
            figures[f"{strategy}_optimum_rate_at_{budget}"] = round(hit, 2)
    return rows, figures


def table_text(rows: list, title: str) -> str:
    lines = [title, "", "| strategy | evaluations | best accuracy (mean ± std) | optimum found | median rank |",
             "|---|---:|---:|---:|---:|"]  # fmt: skip
    lines += [f"| {s} | {b} | {m:.3f} ± {sd:.3f} | {h:.0%} | {r:g} |" for s, b, m, sd, h, r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budgets", type=int, nargs="+", default=[50, 100, 200])
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
            jobs = {s: [pool.submit(one_run, s, seed, budget, overrides, runs_dir) for seed in range(args.seeds)]
                    for s in STRATEGIES}  # fmt: skip
            runs = {s: [job.result() for job in js] for s, js in jobs.items()}
            rows, figures = summarise(runs, args.budgets, max_mflops, optimum, pool_accuracies)
            prefix = "" if setting == "unconstrained" else "constrained_"
            headlines |= {prefix + k: v for k, v in figures.items()}
            limit = f", FLOPs <= {median_mflops:.1f} M (median)" if max_mflops else ""
            sections.append(table_text(rows, f"**{setting}** ({args.seeds} seeds; optimum {optimum:.3f}{limit}):"))
    headlines["seconds"] = round(time.time() - started, 1)
    record("Search quality on NAS-Bench-Macro", "\n\n".join(sections), headlines)


if __name__ == "__main__":
    main()
