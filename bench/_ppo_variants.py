"""The shared skeleton of the PPO screens (bench/ppo_settings.py, bench/ppo_shaping.py, bench/ppo_virtual.py):
command-line options, and every variant run for every seed on NAS-Bench-Macro through bench/search_quality.py's
harness."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from search_quality import DEFAULT_TABLE, one_run


def variant_arguments(doc: str, budget: int, step_cap: int, seeds: int = 20, first_seed: int = 0) -> argparse.Namespace:
    """Parse ``--seeds --first-seed --budget --step-cap --workers --table`` with the screen's own defaults."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=seeds)
    parser.add_argument("--first-seed", type=int, default=first_seed, help="seeds first-seed .. first-seed+seeds-1")
    parser.add_argument("--budget", type=int, default=budget)
    parser.add_argument("--step-cap", type=int, default=step_cap, help="steps per distinct child at most")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--table", type=Path, default=DEFAULT_TABLE)
    return parser.parse_args()


def run_variants(
    args: argparse.Namespace, variants: dict[str, tuple[str, ...]]
) -> tuple[dict[str, list], float, list[float]]:
    """PPO runs per variant (agent-preset overrides) and seed; also the table's optimum and all its accuracies."""
    accuracies = [r["mean_acc"] for r in json.loads(args.table.read_text()).values()]
    optimum = max(accuracies)
    env_overrides = [f"table.path={args.table}"]
    with tempfile.TemporaryDirectory() as runs_dir, ProcessPoolExecutor(args.workers) as pool:
        jobs = {name: [pool.submit(one_run, "ppo", seed, args.budget, env_overrides, runs_dir, overrides,
                                   args.step_cap, optimum)
                      for seed in range(args.first_seed, args.first_seed + args.seeds)]
                for name, overrides in variants.items()}  # fmt: skip
        runs = {name: [j.result() for j in js] for name, js in jobs.items()}
    return runs, optimum, accuracies


def screen(
    doc: str,
    heading: str,
    variants: dict[str, tuple[str, ...]],
    budget: int = 100,
    step_cap: int = 20,
    seeds: int = 20,
    first_seed: int = 0,
) -> None:
    """Run every variant for every seed, print and record mean best / optimum rate at 50 and ``--budget``."""
    from _record import record
    from search_quality import summarise, table_text

    args = variant_arguments(doc, budget=budget, step_cap=step_cap, seeds=seeds, first_seed=first_seed)
    started, rows, headlines = time.time(), [], {}
    runs, optimum, accuracies = run_variants(args, variants)
    budgets = sorted({50, args.budget})
    for i, (name, found_runs) in enumerate(runs.items()):
        found, _ = summarise({name: found_runs}, budgets, None, optimum, accuracies, "distinct", args.step_cap)
        rows += found
        for _, b, m, _, h, _ in found:
            headlines |= {f"variant{i}_mean_at_{b}": round(m, 3), f"variant{i}_optimum_rate_at_{b}": round(h, 2)}
    headlines["seconds"] = round(time.time() - started, 1)
    seed_range = f"seeds {args.first_seed}-{args.first_seed + args.seeds - 1}"
    title = (f"{args.seeds} seeds ({seed_range}); budget = distinct children (at most {args.step_cap} steps "
             f"each); optimum {optimum:.3f}; changes relative to agents/ppo.yaml. Variants in headline order: "
             + "; ".join(f"variant{i} = {v}" for i, v in enumerate(variants)))  # fmt: skip
    record(heading, table_text(rows, title, "PPO variant", seeds=args.seeds), headlines)
