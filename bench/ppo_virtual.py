"""Virtual rollouts (DyNA-PPO) on NAS-Bench-Macro (issue 6): PPO that also learns from a reward model of the
children evaluated so far (rlnas.agents.dyna), against the same PPO without it, and the settings that matter
with it. Same harness as bench/search_quality.py; the budget counts distinct children (at most ``--step-cap``
steps each). Targets: mean best >= 93.08 at 50 children, optimum in >= 90% of seeds at 100.

    python bench/ppo_virtual.py [--seeds 20] [--budget 100] [--step-cap 20] [--workers 2] [--table PATH]
"""

from __future__ import annotations

from _ppo_variants import screen

NEUTRAL = ("repeated_children=neutral",)  # the default when this study was made (bench/ppo_redraw.py: redraw)
VARIANTS = {
    "no virtual rollouts": (*NEUTRAL, "virtual_rollouts=0"),
    "virtual_rollouts 2, ent_coef 0.01": (*NEUTRAL, "virtual_rollouts=2", "ent_coef=0.01"),
    "virtual_rollouts 2, ent_coef 0.03 (shipped then)": (*NEUTRAL, "virtual_rollouts=2"),
    "virtual_rollouts 2, ent_coef 0.03, rank_window 16": (*NEUTRAL, "virtual_rollouts=2", "rank_window=16"),
}


def main() -> None:
    screen(__doc__, "PPO virtual rollouts (DyNA-PPO) on NAS-Bench-Macro", VARIANTS)


if __name__ == "__main__":
    main()
