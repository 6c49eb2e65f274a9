"""Children evaluated per second: the supernet evaluator against the scratch evaluator, on the same children.

Children are drawn uniformly from the space (seeded). The first ``--scratch-children`` are evaluated by both
evaluators (the scratch one with the preset's default ``train`` budget), all ``--children`` by the supernet
evaluator; ``speedup`` compares the mean step time on the shared children. ``overhead_ratio``: the supernet
evaluator's step time (extract, prune, recalibrate, fine-tune if any, evaluate, measure latency, count FLOPs)
divided by the time of the work it cannot avoid on the same child -- the BatchNorm recalibration batches plus
the validation forward pass -- timed separately right after. ``speedup_full_val``: the same comparison with the
supernet evaluator scoring the whole validation split (``supernet.val_size: null``), as the scratch one does.
One warm-up evaluation (another child) is not counted.

    python bench/eval_speed.py [--env fashion_mnist] [--supernet runs/x/supernet.pt] [--children 12]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
from _record import record

from rlnas.config import load_env_preset
from rlnas.envs.evaluators import ScratchEvaluator, child_seed, space_for
from rlnas.envs.supernet_evaluator import SupernetEvaluator, train_preset_supernet
from rlnas.training.data import load_data
from rlnas.training.supernet import load_supernet
from rlnas.training.trainer import accuracy, recalibrate_bn


def timed(fn):
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="fashion_mnist")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--supernet", type=Path, help="a saved supernet (default: train one with the preset)")
    parser.add_argument("--children", type=int, default=12, help="children for the supernet evaluator")
    parser.add_argument("--scratch-children", type=int, default=3, help="of those, how many the scratch one gets")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    preset = load_env_preset(args.env, ["evaluator=supernet", *args.set])
    data = load_data(preset.data)
    space = space_for(preset)
    if args.supernet:
        supernet, meta = load_supernet(args.supernet, space)
        train_s, trained_with = meta["training"]["seconds"], meta["settings"]
    else:
        supernet, train_s = timed(lambda: train_preset_supernet(preset, data))
        trained_with = dataclasses.asdict(preset.supernet)
    fast = SupernetEvaluator(preset, supernet, data=data)
    full_val = dataclasses.replace(preset, supernet=dataclasses.replace(preset.supernet, val_size=None))
    fast_full = SupernetEvaluator(full_val, supernet, data=data)
    scratch = ScratchEvaluator(dataclasses.replace(preset, evaluator="scratch"), data=data)
    rng = np.random.default_rng(args.seed)
    fast.evaluate(space.sample(rng))  # warm-up, not counted
    archs = [space.sample(rng) for _ in range(args.children)]

    s = preset.supernet
    rows, steps, bare, steps_full, scratch_steps = [], [], [], [], []
    for i, arch in enumerate(archs):
        result, step = timed(lambda arch=arch: fast.evaluate(arch))
        model = supernet.extract(arch)
        seed = child_seed(preset.seed, arch)
        _, recal = timed(
            lambda model=model, seed=seed: recalibrate_bn(
                model, data.train, batches=s.recalibration_batches, batch_size=s.recalibration_batch, seed=seed
            )
        )
        _, forward = timed(lambda model=model: accuracy(model, fast.val, batch_size=preset.train.eval_batch_size))
        steps.append(step)
        bare.append(recal + forward)
        cells = [f"{step:.2f}", f"{recal + forward:.2f}", f"{step / (recal + forward):.2f}", f"{result.accuracy:.4f}"]
        if i < args.scratch_children:
            _, step_full = timed(lambda arch=arch: fast_full.evaluate(arch))
            slow, scratch_step = timed(lambda arch=arch: scratch.evaluate(arch))
            steps_full.append(step_full)
            scratch_steps.append(scratch_step)
            cells += [f"{step_full:.2f}", f"{scratch_step:.1f}", f"{slow.accuracy:.4f}", f"{scratch_step / step:.1f}"]
        else:
            cells += ["", "", "", ""]
        rows.append(f"| {' | '.join(cells)} | `{arch}` |")
        print(rows[-1], flush=True)

    shared = args.scratch_children
    speedup = float(np.mean(scratch_steps) / np.mean(steps[:shared]))
    table = "\n".join(
        [
            f"Preset `{preset.name}` ({preset.data.val_size} validation images; supernet evaluator scores the first "
            f"{s.val_size or 'all'}), {s.recalibration_batches} recalibration batches of {s.recalibration_batch}, "
            f"{s.finetune_steps} fine-tune steps; scratch: {preset.train.steps} train + "
            f"{preset.train.finetune_steps} fine-tune steps. Supernet: {trained_with['steps']} steps "
            f"({trained_with['sampling']} sampling, batch {trained_with['batch_size']}, lr {trained_with['lr']}), "
            f"trained in {train_s:.0f} s. Latency source: {fast.latency.name} (`latency.source: "
            f"{preset.latency.source}`).",
            "",
            "| supernet step (s) | bare recal.+val. (s) | overhead | inherited acc. | supernet step, all val. (s) "
            "| scratch step (s) | scratch acc. | speed-up | architecture |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---|",
            *rows,
        ]
    )
    headlines = {
        "supernet_train_s": round(train_s, 1),
        "supernet_step_s_mean": round(float(np.mean(steps)), 3),
        "scratch_step_s_mean": round(float(np.mean(scratch_steps)), 2),
        "supernet_children_per_s": round(1 / float(np.mean(steps)), 3),
        "scratch_children_per_s": round(1 / float(np.mean(scratch_steps)), 4),
        "speedup_full_val": round(float(np.mean(scratch_steps) / np.mean(steps_full)), 1),
        "speedup": round(speedup, 1),
        "overhead_ratio": round(float(np.sum(steps) / np.sum(bare)), 3),
    }
    record(
        "eval_speed",
        "Supernet evaluator speed (bench/eval_speed.py)",
        "Children evaluated per second by the supernet evaluator against the scratch evaluator, on the same "
        "children. Goal: speed-up >= 30x.",
        table,
        headlines,
    )


if __name__ == "__main__":
    main()
