"""Transfer of a trained controller: how many evaluations a PPO policy started from a trained one
(``--init-policy``) needs to reach a good reward on a new target, against a fresh policy, on NAS-Bench-Macro.

Source task: MnasNet soft reward on the table's FLOPs, target the median (55.4 MFLOPs), ``--source-budget``
evaluations with the shipped agents/ppo.yaml. Target task: the same reward with a tighter target, the
``--target-quantile`` quantile of the table's FLOPs. Threshold: the reward of the ``--top``-th best of the
6561 architectures on the target task (computed from the table). For every seed, a source search, then a fresh
and a transferred search on the target task with the same seed; the figure is the number of distinct children
evaluated until a child reaches the threshold (searches that never do count as the budget, and are reported).

    python bench/transfer.py [--seeds 10] [--source-budget 200] [--budget 100] [--top 20] [--table PATH]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from _record import record

DEFAULT_TABLE = Path(__file__).resolve().parents[2] / "shared/benchmarks/nas-bench-macro/nas-bench-macro_cifar10.json"


def overrides(table: Path, target_mflops: float) -> list[str]:
    return [f"table.path={table}", "reward.kind=mnasnet", "reward.cost=flops", f"reward.target_mflops={target_mflops}"]


def target_rewards(table: Path, target_mflops: float) -> list[float]:
    """The target task's reward of every architecture in the table, best first."""
    from rlnas.config import load_env_preset
    from rlnas.envs.reward import compute_reward
    from rlnas.envs.tabular import TabularEvaluator

    preset = load_env_preset("nas_bench_macro", overrides(table, target_mflops))
    evaluator = TabularEvaluator(preset)
    space = evaluator.space
    rewards = []
    for ops in itertools.product(space.operators, repeat=space.num_layers):
        result = evaluator.evaluate(space.parse("|".join(f"{op}@1.0" for op in ops)))
        rewards.append(compute_reward(preset.reward, result.accuracy, 0.0, result.flops, None).reward)
    return sorted(rewards, reverse=True)


def evaluations_to(run_dir: Path, threshold: float, budget: int) -> int | None:
    """Distinct children evaluated until one reached ``threshold`` (None if none did within ``budget``)."""
    from rlnas.store import EvaluationStore

    store = EvaluationStore(run_dir / "evaluations.sqlite")
    rewards = [r["reward"] for r in store.records()][:budget]
    store.close()
    return next((i for i, r in enumerate(rewards, 1) if r >= threshold - 1e-12), None)


def one_seed(seed: int, args: argparse.Namespace, target_mflops: float, threshold: float, runs: str) -> dict:
    import torch

    torch.set_num_threads(1)
    from rlnas.config import load_env_preset
    from rlnas.search import run_search

    source = load_env_preset("nas_bench_macro", overrides(args.table, args.source_mflops))
    target = load_env_preset("nas_bench_macro", overrides(args.table, target_mflops))
    common = {"runs_dir": runs, "seed": seed, "progress_bar": False}
    trained = run_search(source, "ppo", evaluations=args.source_budget, run_name=f"source_{seed}", **common)
    fresh = run_search(target, "ppo", evaluations=args.budget, run_name=f"fresh_{seed}", **common)
    transferred = run_search(target, "ppo", evaluations=args.budget, run_name=f"transferred_{seed}",
                             init_policy=trained.run_dir, **common)  # fmt: skip
    return {name: evaluations_to(r.run_dir, threshold, args.budget)
            for name, r in (("fresh", fresh), ("transferred", transferred))}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--source-budget", type=int, default=200)
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--source-mflops", type=float, default=55.4, help="source target (the median FLOPs)")
    parser.add_argument("--target-quantile", type=float, default=0.25)
    parser.add_argument("--top", type=int, default=20, help="threshold: the reward of the top-th architecture")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--table", type=Path, default=DEFAULT_TABLE)
    args = parser.parse_args()
    flops = sorted(r["flops"] / 1e6 for r in json.loads(args.table.read_text()).values())
    target_mflops = round(flops[int(args.target_quantile * (len(flops) - 1))], 2)
    threshold = target_rewards(args.table, target_mflops)[args.top - 1]
    started = time.time()
    with tempfile.TemporaryDirectory() as runs, ProcessPoolExecutor(args.workers) as pool:
        jobs = [pool.submit(one_seed, seed, args, target_mflops, threshold, runs) for seed in range(args.seeds)]
        results = [job.result() for job in jobs]
    rows, headlines = [], {}
    for name in ("fresh", "transferred"):
        reached = [r[name] for r in results]
        counted = [n if n is not None else args.budget for n in reached]
        rate = sum(n is not None for n in reached) / len(reached)
        rows.append(f"| {name} | {statistics.median(counted):g} | {statistics.mean(counted):.1f} | {rate:.0%} | "
                    f"{' '.join(str(n) if n is not None else '-' for n in reached)} |")  # fmt: skip
        headlines[f"{name}_median_evaluations"] = statistics.median(counted)
        headlines[f"{name}_reached_rate"] = round(rate, 2)
    fresh, moved = headlines["fresh_median_evaluations"], headlines["transferred_median_evaluations"]
    headlines["speedup_median"] = round(fresh / max(moved, 1), 2)
    headlines["seconds"] = round(time.time() - started, 1)
    table = "\n".join([
        f"Source: FLOPs target {args.source_mflops} M, {args.source_budget} evaluations. Target: FLOPs target "
        f"{target_mflops} M (the {args.target_quantile:g} quantile); threshold = reward of the #{args.top} "
        f"architecture of 6561 ({threshold:.5f}); budget {args.budget}; {args.seeds} seeds; shipped agents/ppo.yaml.",
        "",
        "| policy | evaluations to threshold (median) | mean | reached | per seed |",
        "|---|---:|---:|---:|---|",
        *rows,
    ])  # fmt: skip
    record(
        "transfer",
        "Transfer of a trained controller (NAS-Bench-Macro)",
        "How many evaluations a PPO policy started from a trained controller needs, against one started from scratch.",
        table,
        headlines,
    )


if __name__ == "__main__":
    main()
