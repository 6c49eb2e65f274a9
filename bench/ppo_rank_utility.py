"""The learner's reward utility on NAS-Bench-Macro (issue 6): ``reward_transform: log_rank`` (``-log(1 -
percentile)``, top-heavy) against ``rank`` (the percentile, centred), both with the rest of agents/ppo.yaml.
Same harness as bench/search_quality.py; the budget counts distinct children (at most ``--step-cap`` steps
each). Seeds 40-119 by default: held out from bench/search_quality.py's seeds 0-39, so the shipped default is
not chosen on the seeds that report it. Targets: mean best >= 93.08 at 50 children, optimum in >= 90% of seeds
at 100.

    python bench/ppo_rank_utility.py [--seeds 80] [--first-seed 40] [--budget 100] [--step-cap 20] [--workers 2]
"""

from __future__ import annotations

from _ppo_variants import screen

VARIANTS = {
    "reward_transform rank (the previous default)": ("reward_transform=rank",),
    "reward_transform log_rank (shipped)": (),
}


def main() -> None:
    screen(__doc__, "PPO reward utility on NAS-Bench-Macro: log_rank vs rank", VARIANTS, seeds=80, first_seed=40)


if __name__ == "__main__":
    main()
