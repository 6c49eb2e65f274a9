"""PPO reward shaping and update strength on NAS-Bench-Macro (issue 6): the percentile of a reward among the
last ``rank_window`` first visits instead of all of them, and a wider ``clip_range``, against the shipped
agents/ppo.yaml. Same harness as bench/search_quality.py; the budget counts distinct children (at most
``--step-cap`` steps each). Targets: mean best >= 93.08 at 50 children, optimum in >= 90% of seeds at 100.

    python bench/ppo_shaping.py [--seeds 20] [--budget 100] [--step-cap 20] [--workers 2] [--table PATH]
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
from search_quality import DEFAULT_TABLE, one_run, summarise, table_text

VARIANTS = {
    "shipped agents/ppo.yaml": (),
    "rank_window 16": ("rank_window=16",),
    "rank_window 32": ("rank_window=32",),
    "clip_range 1.0": ("clip_range=1.0",),
    "clip_range 2.0": ("clip_range=2.0",),
    "clip_range 1.0, rank_window 16": ("clip_range=1.0", "rank_window=16"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--step-cap", type=int, default=20, help="steps per distinct child at most")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--table", type=Path, default=DEFAULT_TABLE)
    args = parser.parse_args()
    accuracies = [r["mean_acc"] for r in json.loads(args.table.read_text()).values()]
    optimum, budgets = max(accuracies), sorted({50, args.budget})
    started, rows, headlines = time.time(), [], {}
    env_overrides = [f"table.path={args.table}"]
    with tempfile.TemporaryDirectory() as runs_dir, ProcessPoolExecutor(args.workers) as pool:
        jobs = {name: [pool.submit(one_run, "ppo", seed, args.budget, env_overrides, runs_dir, overrides,
                                   args.step_cap, optimum) for seed in range(args.seeds)]
                for name, overrides in VARIANTS.items()}  # fmt: skip
        for i, (name, js) in enumerate(jobs.items()):
            found, _ = summarise({name: [j.result() for j in js]}, budgets, None, optimum, accuracies, "distinct",
                                 args.step_cap)  # fmt: skip
            rows += found
            for _, b, m, _, h, _ in found:
                headlines |= {f"variant{i}_mean_at_{b}": round(m, 3), f"variant{i}_optimum_rate_at_{b}": round(h, 2)}
    headlines["seconds"] = round(time.time() - started, 1)
    title = (f"{args.seeds} seeds; budget = distinct children (at most {args.step_cap} steps each); optimum "
             f"{optimum:.3f}; changes relative to agents/ppo.yaml. Variants in headline order: "
             + "; ".join(f"variant{i} = {v}" for i, v in enumerate(VARIANTS)))  # fmt: skip
    record("PPO reward shaping on NAS-Bench-Macro: rank window and clip range", table_text(rows, title, "PPO variant"),
           headlines)  # fmt: skip


if __name__ == "__main__":
    main()
