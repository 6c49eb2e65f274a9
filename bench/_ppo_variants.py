"""The shared skeleton of the PPO screens (bench/ppo_settings.py, bench/ppo_shaping.py): command-line options,
and every variant run for every seed on NAS-Bench-Macro through bench/search_quality.py's harness."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from search_quality import DEFAULT_TABLE, one_run


def variant_arguments(doc: str, budget: int, step_cap: int) -> argparse.Namespace:
    """Parse ``--seeds --budget --step-cap --workers --table`` with the screen's own defaults."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20)
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
                                   args.step_cap, optimum) for seed in range(args.seeds)]
                for name, overrides in variants.items()}  # fmt: skip
        runs = {name: [j.result() for j in js] for name, js in jobs.items()}
    return runs, optimum, accuracies
