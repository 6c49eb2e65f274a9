"""PPO reward shaping and update strength on NAS-Bench-Macro (issue 6): the percentile of a reward among the
last ``rank_window`` first visits instead of all of them, and a wider ``clip_range``, against agents/ppo.yaml as
it was before virtual rollouts and redrawing (``virtual_rollouts=0``, ``repeated_children=neutral`` in every
variant; bench/ppo_virtual.py and bench/ppo_redraw.py measure them).
Same harness as bench/search_quality.py; the budget counts distinct children (at most ``--step-cap`` steps
each). Targets: mean best >= 93.08 at 50 children, optimum in >= 90% of seeds at 100.

    python bench/ppo_shaping.py [--seeds 20] [--budget 100] [--step-cap 20] [--workers 2] [--table PATH]
"""

from __future__ import annotations

from _ppo_variants import screen

BEFORE = ("virtual_rollouts=0", "repeated_children=neutral")
VARIANTS = {
    "agents/ppo.yaml, virtual_rollouts 0": (*BEFORE,),
    "rank_window 16": (*BEFORE, "rank_window=16"),
    "rank_window 32": (*BEFORE, "rank_window=32"),
    "clip_range 1.0": (*BEFORE, "clip_range=1.0"),
    "clip_range 2.0": (*BEFORE, "clip_range=2.0"),
    "clip_range 1.0, rank_window 16": (*BEFORE, "clip_range=1.0", "rank_window=16"),
}


def main() -> None:
    screen(__doc__, "PPO reward shaping on NAS-Bench-Macro: rank window and clip range", VARIANTS)


if __name__ == "__main__":
    main()
