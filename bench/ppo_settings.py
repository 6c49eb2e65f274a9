"""PPO settings on NAS-Bench-Macro: the action-space factorisation (joint vs sequential) and the settings that
matter under each, through the same harness as bench/search_quality.py. The budget counts DISTINCT children (a
repeat would be served from an evaluation cache), with at most ``--step-cap`` steps per distinct child; the
per-step figures of the same runs are listed beside them. Virtual rollouts are off in every variant (this
study predates them; bench/ppo_virtual.py measures them).

    python bench/ppo_settings.py [--seeds 20] [--budget 200] [--step-cap 5] [--workers 2] [--table PATH]
"""

from __future__ import annotations

import time

from _ppo_variants import run_variants, variant_arguments
from _record import record
from search_quality import summarise

PINNED = ("virtual_rollouts=0", "repeated_children=neutral")  # the settings this study predates
JOINT = ("factorisation=joint", *PINNED, "net_arch=[]", "learning_rate=0.03", "ent_coef=0.1")
SEQUENTIAL = ("factorisation=sequential", *PINNED, "net_arch=[64]", "learning_rate=0.01", "ent_coef=0.1")
VARIANTS = {
    "joint (free logits, lr 3e-2, ent 0.1)": JOINT,
    "joint, ent halves every 50 children": (*JOINT, "ent_half_life=50"),
    "joint, ent 0.01": (*JOINT, "ent_coef=0.01"),
    "joint, n_steps 4, batch 4": (*JOINT, "n_steps=4", "batch_size=4"),
    "sequential ([64], lr 1e-2, ent 0.1)": SEQUENTIAL,
    "sequential, lr 3e-3": (*SEQUENTIAL, "learning_rate=0.003"),
    "sequential, lr 3e-3, net [128]": (*SEQUENTIAL, "learning_rate=0.003", "net_arch=[128]"),
    "sequential, ent halves every 100 children": (*SEQUENTIAL, "ent_half_life=100"),
    "sequential, raw reward (no rank)": (*SEQUENTIAL, "reward_transform=none"),
}


def main() -> None:
    args = variant_arguments(__doc__, budget=200, step_cap=5)
    started, rows = time.time(), {"distinct": [], "per_step": []}
    runs, optimum, accuracies = run_variants(args, VARIANTS)
    budgets = sorted({50, 100, args.budget})
    for name, found_runs in runs.items():
        for counting, counted in rows.items():
            counted += summarise({name: found_runs}, budgets, None, optimum, accuracies, counting, args.step_cap)[0]
    lines = [f"{args.seeds} seeds. Joint = {', '.join(JOINT)}; sequential = {', '.join(SEQUENTIAL)}; other keys "
             "as agents/ppo.yaml. Budget = distinct children (at most "
             f"{args.step_cap} steps each); per step = every step counts.", "",
             "| PPO variant | budget | distinct: best accuracy | optimum found | median rank | per step: best "
             "accuracy | optimum found |", "|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for (v, b, m, sd, h, r), (_, _, pm, psd, ph, _) in zip(rows["distinct"], rows["per_step"], strict=True):
        lines.append(f"| {v} | {b} | {m:.3f} ± {sd:.3f} | {h:.0%} | {r:g} | {pm:.3f} ± {psd:.3f} | {ph:.0%} |")
    headlines = {}
    for i, (_, b, m, _, h, _) in enumerate(rows["distinct"]):
        tag = f"variant{i // len(budgets)}"
        headlines |= {f"{tag}_mean_at_{b}": round(m, 3), f"{tag}_optimum_rate_at_{b}": round(h, 2)}
    headlines["seconds"] = round(time.time() - started, 1)
    lines += ["", "Variants in headline order: " + "; ".join(f"variant{i} = {v}" for i, v in enumerate(VARIANTS))]
    record("PPO settings on NAS-Bench-Macro: factorisation and distinct-children budget", "\n".join(lines), headlines)


if __name__ == "__main__":
    main()
