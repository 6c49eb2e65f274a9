"""The PPO policy's multi-discrete distribution: SB3's ``MlpPolicy`` vs rlnas' ``BatchedMlpPolicy``
(rlnas.agents.policy), the same distribution computed as one tensor. Same harness as bench/search_quality.py
(shipped agents/ppo.yaml, NAS-Bench-Macro, budget = distinct children): for each seed, one unconstrained search to
``--budget`` children with each policy, timed in the same process one after the other. The searches differ only
in how the random draws are consumed, so their quality figures should agree within seed noise; the speed-up is
the ratio of the time per search step (a search that finds the optimum early stops early).

    python bench/ppo_policy.py [--seeds 30] [--first-seed 0] [--budget 100] [--table PATH]
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import tempfile
import time
from pathlib import Path

from _record import record
from search_quality import DEFAULT_TABLE, best_within, one_run, within

import rlnas.agents.ppo
from rlnas.agents.policy import BatchedMlpPolicy

POLICIES = {"sb3 MlpPolicy": "MlpPolicy", "BatchedMlpPolicy": BatchedMlpPolicy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--table", type=Path, default=DEFAULT_TABLE)
    args = parser.parse_args()
    optimum = max(r["mean_acc"] for r in json.loads(args.table.read_text()).values())
    importlib.import_module("rlnas.search")  # imported before the clock starts (one_run imports it lazily)
    seconds, steps = dict.fromkeys(POLICIES, 0.0), dict.fromkeys(POLICIES, 0)
    best = {name: {50: [], args.budget: []} for name in POLICIES}
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for name, policy in POLICIES.items():
            rlnas.agents.ppo.BatchedMlpPolicy = policy  # what make_ppo builds
            started = time.perf_counter()
            with tempfile.TemporaryDirectory() as runs_dir:
                children = one_run("ppo", seed, args.budget, [f"table.path={args.table}"], runs_dir, (), 20, optimum)
            seconds[name] += time.perf_counter() - started
            steps[name] += len(children)
            for budget in best[name]:
                best[name][budget].append(best_within(within(children, budget, "distinct", 20), None))
    rows = [f"| policy | mean best at 50 | optimum found at {args.budget} | steps | ms per step |",
            "|---|---:|---:|---:|---:|"]  # fmt: skip
    headlines: dict[str, float] = {}
    for i, name in enumerate(POLICIES):
        mean = statistics.mean(best[name][50])
        hits = sum(abs(b - optimum) < 1e-6 for b in best[name][args.budget]) / args.seeds
        rows.append(f"| {name} | {mean:.3f} | {hits:.0%} | {steps[name]} | {1e3 * seconds[name] / steps[name]:.1f} |")
        headlines |= {f"policy{i}_mean_at_50": round(mean, 3), f"policy{i}_optimum_rate_at_{args.budget}": hits}
    per_step = {name: seconds[name] / steps[name] for name in POLICIES}
    headlines["speedup_per_step"] = round(per_step["sb3 MlpPolicy"] / per_step["BatchedMlpPolicy"], 2)
    title = (f"Seeds {args.first_seed}-{args.first_seed + args.seeds - 1}, unconstrained, budget {args.budget} "
             f"distinct children (at most 20 steps each), optimum {optimum:.3f}; policy0 = sb3 MlpPolicy, "
             "policy1 = BatchedMlpPolicy.")  # fmt: skip
    record("PPO policy distribution: SB3 MlpPolicy vs BatchedMlpPolicy", title + "\n\n" + "\n".join(rows), headlines)


if __name__ == "__main__":
    main()
