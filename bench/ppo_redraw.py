"""Redrawing repeated children (``repeated_children: redraw``, rlnas.agents.policy) on NAS-Bench-Macro (issue 6),
with 2 and 4 virtual rollouts, against the neutral repeats of the earlier default. Same harness as
bench/search_quality.py; the budget counts distinct children (at most ``--step-cap`` steps each). 40 seeds by
default: the optimum rate at 100 children of one 20-seed run moves by +-15 points with the random stream alone
(bench/ppo_policy.py). Targets: mean best >= 93.08 at 50 children, optimum in >= 90% of seeds at 100.

    python bench/ppo_redraw.py [--seeds 40] [--budget 100] [--step-cap 20] [--workers 2] [--table PATH]
"""

from __future__ import annotations

from _ppo_variants import screen

VARIANTS = {
    "neutral repeats, virtual_rollouts 2 (the previous default)": ("repeated_children=neutral", "virtual_rollouts=2"),
    "neutral repeats, virtual_rollouts 4": ("repeated_children=neutral",),
    "redraw, virtual_rollouts 2": ("virtual_rollouts=2",),
    "redraw, virtual_rollouts 4 (shipped)": (),
}


def main() -> None:
    screen(__doc__, "PPO redrawing repeated children on NAS-Bench-Macro", VARIANTS, seeds=40)


if __name__ == "__main__":
    main()
