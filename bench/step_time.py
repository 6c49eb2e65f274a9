"""Time one environment step of the default preset, split into its phases, for small / middle / large children.

Children: among the uniform architectures (one operator and keep-ratio everywhere), the ones with the smallest,
median and largest FLOPs after pruning. Each is evaluated with the preset's full budget (train, prune,
fine-tune, evaluate, measure). Also measures, in the same run, the unpruned model's latency for each, so
the pruning speed-up is a ratio of two measurements taken side by side.

    python bench/step_time.py [--env fashion_mnist]
"""

from __future__ import annotations

import argparse

import numpy as np
from _record import record

from rlnas.config import load_env_preset
from rlnas.envs.evaluators import ScratchEvaluator
from rlnas.latency import count_flops, measure_latency
from rlnas.pruning import build_model, prune_child


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", default="fashion_mnist")
    args = parser.parse_args()
    preset = load_env_preset(args.env)
    evaluator = ScratchEvaluator(preset)
    space = evaluator.space

    def pruned_flops(arch) -> int:
        return count_flops(prune_child(build_model(space, arch)), space.input_shape)

    uniform = sorted(
        (space.uniform(op, keep) for op in space.operators for keep in space.keep_ratios), key=pruned_flops
    )
    picks = {"smallest": uniform[0], "middle": uniform[len(uniform) // 2], "largest": uniform[-1]}

    rows, phases = [], {k: [] for k in ("train_s", "prune_s", "finetune_s", "eval_s", "latency_s")}
    for label, arch in picks.items():
        result = evaluator.evaluate(arch)
        unpruned_ms = measure_latency(build_model(space, arch), space.input_shape, preset.latency)
        total = sum(getattr(result, k) for k in phases)
        for k in phases:
            phases[k].append(getattr(result, k))
        rows.append(
            f"| {label} | `{arch}` | {total:.1f} | {result.train_s:.1f} | {result.prune_s:.2f} | "
            f"{result.finetune_s:.1f} | {result.eval_s:.2f} | {result.latency_s:.2f} | {result.accuracy:.4f} | "
            f"{result.latency_ms:.3f} | {unpruned_ms:.3f} | {result.params_unpruned} -> {result.params} |"
        )
    table = "\n".join(
        [
            f"Preset `{preset.name}`: {preset.train.steps} train + {preset.train.finetune_steps} fine-tune steps "
            f"(batch {preset.train.batch_size}); latency: {preset.latency.device}, {preset.latency.threads} thread, "
            f"batch {preset.latency.batch_size}, {preset.latency.statistic} of {preset.latency.repeats}.",
            "",
            "| child | architecture | step (s) | train | prune | fine-tune | evaluate | latency | val. acc. "
            "| latency (ms) | unpruned latency (ms) | params |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
        ]
    )
    headlines = {f"{k}_mean": round(float(np.mean(v)), 3) for k, v in phases.items()}
    headlines["step_s_mean"] = round(sum(float(np.mean(v)) for v in phases.values()), 2)
    pruning_table, ratios = pruning_speedups(space, preset)
    table += "\n\n" + pruning_table
    for keep, values in ratios.items():
        headlines[f"latency_speedup_keep_{keep}"] = round(float(np.exp(np.mean(np.log(values)))), 2)
    record(
        "step_time",
        "Step time of the default preset (bench/step_time.py)",
        "One environment step of the default preset split into its phases, for small, middle and large children.",
        table,
        headlines,
    )


def pruning_speedups(space, preset) -> tuple[str, dict[float, list[float]]]:
    """Unpruned / pruned latency of every uniform architecture, measured side by side (weights do not matter)."""
    keeps = [k for k in space.keep_ratios if k < 1.0]
    ratios: dict[float, list[float]] = {k: [] for k in keeps}
    rows = []
    for op in space.operators:
        full = measure_latency(build_model(space, space.uniform(op, 1.0)), space.input_shape, preset.latency)
        cells = []
        for keep in keeps:
            arch = space.uniform(op, keep)
            pruned = measure_latency(prune_child(build_model(space, arch)), space.input_shape, preset.latency)
            ratios[keep].append(full / pruned)
            cells.append(f"{pruned:.3f} ({full / pruned:.2f}x)")
        rows.append(f"| {op} | {full:.3f} | " + " | ".join(cells) + " |")
    header = "| operator (all layers) | keep 1.0 (ms) | " + " | ".join(f"keep {k} (ms, speed-up)" for k in keeps) + " |"
    table = "\n".join(
        ["Latency after pruning, uniform architectures:", "", header, "|---" * (len(keeps) + 2) + "|", *rows]
    )
    return table, ratios


if __name__ == "__main__":
    main()
