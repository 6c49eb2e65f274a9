"""PPO settings on NAS-Bench-Macro: the shipped agents/ppo.yaml against the untuned first version and one-change
ablations, through the same harness as bench/search_quality.py (every step counts as an evaluation).

    python bench/ppo_settings.py [--seeds 20] [--budget 200] [--workers 2] [--table PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from _record import record
from search_quality import DEFAULT_TABLE, one_run, summarise

UNTUNED = ("net_arch=[64]", "learning_rate=0.003", "clip_range=0.2", "ent_coef=0.01", "reward_transform=none",
           "repeated_children=reward")  # fmt: skip
VARIANTS = {
    "shipped agents/ppo.yaml": (),
    "untuned first version": UNTUNED,
    "raw reward (no rank)": ("reward_transform=none",),
    "repeats rewarded again": ("repeated_children=reward",),
    "ent_coef 0.01": ("ent_coef=0.01",),
    "learning_rate 0.003": ("learning_rate=0.003",),
    "net_arch [64]": ("net_arch=[64]",),
    "clip_range 0.2": ("clip_range=0.2",),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budget", type=int, default=200)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--table", type=Path, default=DEFAULT_TABLE)
    args = parser.parse_args()
    accuracies = [r["mean_acc"] for r in json.loads(args.table.read_text()).values()]
    budgets = sorted({50, 100, args.budget})
    started, rows = time.time(), []
    env_overrides = [f"table.path={args.table}"]
    with tempfile.TemporaryDirectory() as runs_dir, ProcessPoolExecutor(args.workers) as pool:
        jobs = {name: [pool.submit(one_run, "ppo", seed, args.budget, env_overrides, runs_dir, overrides)
                       for seed in range(args.seeds)] for name, overrides in VARIANTS.items()}  # fmt: skip
        for name, js in jobs.items():
            summary, _ = summarise({name: [j.result() for j in js]}, budgets, None, max(accuracies), accuracies)
            rows += summary
    lines = [f"{args.seeds} seeds; changes are relative to the shipped preset; untuned = {', '.join(UNTUNED)}.", "",
             "| PPO variant | evaluations | best accuracy (mean ± std) | optimum found | median rank |",
             "|---|---:|---:|---:|---:|"]  # fmt: skip
    lines += [f"| {v} | {b} | {m:.3f} ± {sd:.3f} | {h:.0%} | {r:g} |" for v, b, m, sd, h, r in rows]
    shipped = {b: (m, h) for v, b, m, _, h, _ in rows if v == "shipped agents/ppo.yaml"}
    untuned = {b: (m, h) for v, b, m, _, h, _ in rows if v == "untuned first version"}
    headlines = {f"shipped_mean_at_{b}": round(shipped[b][0], 3) for b in budgets}
    headlines |= {f"shipped_optimum_rate_at_{b}": round(shipped[b][1], 2) for b in budgets}
    headlines |= {f"untuned_mean_at_{b}": round(untuned[b][0], 3) for b in budgets}
    headlines |= {f"untuned_optimum_rate_at_{b}": round(untuned[b][1], 2) for b in budgets}
    headlines["seconds"] = round(time.time() - started, 1)
    record("PPO settings on NAS-Bench-Macro", "\n".join(lines), headlines)


if __name__ == "__main__":
    main()
