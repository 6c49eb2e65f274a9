"""How well the supernet's inherited accuracy ranks children: Kendall tau against standalone training.

Children: ``--children`` architectures drawn across the space, small to large: child ``i`` has keep-ratio
``keep_ratios[i % len(keep_ratios)]`` at every layer and a uniformly random operator per layer (seeded).
Standalone accuracy: the scratch evaluator with the preset's own ``train`` budget (build, train ``train.steps``,
prune, recalibrate, fine-tune ``train.finetune_steps``, validation accuracy on the whole validation split).
Standalone results are kept in ``bench/results/proxy_fidelity_standalone.json`` (keyed by architecture and
budget) so a re-run only trains the children it has not seen. Supernet accuracy: the supernet evaluator with
the preset's ``supernet`` settings, on a supernet from ``--supernet PATH`` or trained here.

    python bench/proxy_fidelity.py [--env fashion_mnist] [--children 20] [--supernet runs/x/supernet.pt] [--no-record]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
from _record import record

from rlnas.config import load_env_preset
from rlnas.envs.evaluators import ScratchEvaluator, space_for
from rlnas.envs.supernet_evaluator import SupernetEvaluator, train_preset_supernet
from rlnas.latency.validate import kendall_tau
from rlnas.space import Arch
from rlnas.training.data import load_data
from rlnas.training.supernet import load_supernet

RESULTS = Path(__file__).resolve().parent / "results" / "proxy_fidelity_standalone.json"


def children(space, count: int, seed: int) -> list[Arch]:
    """``count`` architectures from small to large: one keep-ratio per child, random operators."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        keep = space.keep_ratios[i % len(space.keep_ratios)]
        out.append(Arch(space.sample(rng).ops, (keep,) * space.num_layers))
    return out


def standalone(preset, archs: list[Arch], data) -> dict[str, dict]:
    """Standalone (scratch-trained) results, from the results file where present, trained otherwise."""
    budget = {k: v for k, v in dataclasses.asdict(preset.train).items() if k != "threads"}
    key = {"preset": preset.name, "space_fingerprint": space_for(preset).fingerprint, "budget": budget}
    saved = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    known = saved.get("children", {}) if {k: saved.get(k) for k in key} == key else {}
    evaluator = ScratchEvaluator(dataclasses.replace(preset, evaluator="scratch"), data=data)
    for i, arch in enumerate(archs):
        if str(arch) in known:
            continue
        started = time.perf_counter()
        r = evaluator.evaluate(arch)
        known[str(arch)] = {"accuracy": r.accuracy, "params": r.params, "flops": r.flops, "status": r.status}
        print(f"standalone {i + 1}/{len(archs)}: {r.accuracy:.4f} in {time.perf_counter() - started:.0f} s  {arch}")
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps({**key, "children": known}, indent=1) + "\n")
    return known


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="fashion_mnist")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--children", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--supernet", type=Path, help="a saved supernet (default: train one with the preset)")
    parser.add_argument("--standalone-only", action="store_true", help="train the standalone children and stop")
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to BENCHMARKS.md")
    args = parser.parse_args()
    preset = load_env_preset(args.env, ["evaluator=supernet", *args.set])
    data = load_data(preset.data)
    archs = children(space_for(preset), args.children, args.seed)
    alone = standalone(preset, archs, data)
    if args.standalone_only:
        return
    if args.supernet:
        supernet, meta = load_supernet(args.supernet, space_for(preset))
        train_s, trained_with = meta["training"]["seconds"], meta["settings"]
    else:
        started = time.perf_counter()
        supernet = train_preset_supernet(preset, data)
        train_s, trained_with = time.perf_counter() - started, dataclasses.asdict(preset.supernet)
    evaluator = SupernetEvaluator(preset, supernet, data=data)
    rows, inherited, trained = [], [], []
    for arch in archs:
        r = evaluator.evaluate(arch)
        inherited.append(r.accuracy)
        trained.append(alone[str(arch)]["accuracy"])
        rows.append(f"| {r.accuracy:.4f} | {trained[-1]:.4f} | {r.params} | {r.flops / 1e6:.2f} | `{arch}` |")
    tau = kendall_tau(inherited, trained)
    s = preset.supernet
    table = "\n".join(
        [
            f"Preset `{preset.name}`, {len(archs)} children (seed {args.seed}). Supernet: "
            f"{trained_with['steps']} steps, sampling {trained_with['sampling']}, "
            f"distillation {'on' if trained_with.get('distill') else 'off'}, "
            f"widest warm-up {trained_with.get('widest_warmup', 0):g} of the steps, "
            f"batch {trained_with['batch_size']}, "
            f"lr {trained_with['lr']}, resort every {trained_with['resort_every']}, trained in {train_s:.0f} s; "
            "child evaluation: "
            f"{s.recalibration_batches} recalibration batches of {s.recalibration_batch}, {s.finetune_steps} "
            "fine-tune steps, "
            f"val_size {s.val_size or 'all'}. Standalone: the scratch evaluator's budget, {preset.train.steps} "
            f"train + {preset.train.finetune_steps} fine-tune steps (batch {preset.train.batch_size}), whole "
            f"validation split ({RESULTS.relative_to(RESULTS.parents[2])}).",
            "",
            "| supernet (inherited) acc. | standalone acc. | params | MFLOPs | architecture |",
            "|---:|---:|---:|---:|---|",
            *rows,
        ]
    )
    headlines = {
        "children": len(archs),
        "supernet_train_s": round(train_s, 1),
        "supernet_best_child_acc": round(max(inherited), 4),
        "supernet_worst_child_acc": round(min(inherited), 4),
        "standalone_best_child_acc": round(max(trained), 4),
        "standalone_worst_child_acc": round(min(trained), 4),
        "kendall_tau": round(tau, 3),
    }
    record(
        "proxy_fidelity",
        "Supernet proxy fidelity (bench/proxy_fidelity.py)",
        "How well the supernet's inherited accuracy ranks children: Kendall tau against standalone training. "
        "Goal: tau >= 0.5.",
        table,
        headlines,
        append=not args.no_record,
    )


if __name__ == "__main__":
    main()
