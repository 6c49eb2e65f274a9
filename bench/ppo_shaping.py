"""PPO reward shaping and update strength on NAS-Bench-Macro (issue 6): the percentile of a reward among the
last ``rank_window`` first visits instead of all of them, and a wider ``clip_range``, against the shipped
agents/ppo.yaml. Same harness as bench/search_quality.py; the budget counts distinct children (at most
``--step-cap`` steps each). Targets: mean best >= 93.08 at 50 children, optimum in >= 90% of seeds at 100.

    python bench/ppo_shaping.py [--seeds 20] [--budget 100] [--step-cap 20] [--workers 2] [--table PATH]
"""

from __future__ import annotations

import time

from _ppo_variants import run_variants, variant_arguments
from _record import record
from search_quality import summarise, table_text

VARIANTS = {
    "shipped agents/ppo.yaml": (),
    "rank_window 16": ("rank_window=16",),
    "rank_window 32": ("rank_window=32",),
    "clip_range 1.0": ("clip_range=1.0",),
    "clip_range 2.0": ("clip_range=2.0",),
    "clip_range 1.0, rank_window 16": ("clip_range=1.0", "rank_window=16"),
}


def main() -> None:
    args = variant_arguments(__doc__, budget=100, step_cap=20)
    started, rows, headlines = time.time(), [], {}
    runs, optimum, accuracies = run_variants(args, VARIANTS)
    budgets = sorted({50, args.budget})
    for i, (name, found_runs) in enumerate(runs.items()):
        found, _ = summarise({name: found_runs}, budgets, None, optimum, accuracies, "distinct", args.step_cap)
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
