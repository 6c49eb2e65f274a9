"""Prune a trained ResNet-18 to half its FLOPs (issue 20, item 4): uniform L1, random plans, the controller's plan.

The model: torchvision's ResNet-18 (1 input channel, ImageNet stem, 66 MFLOPs per 28x28 image) pre-trained by the
bench on Fashion-MNIST (``--train-subset`` training images, ``--pretrain-epochs``; cached under runs/pretrained/).
At ``--flops-share`` of its FLOPs, three ways to choose the keep-ratio of each of its Torch-Pruning groups (L1
importance, kept channels multiples of 8):

(a) uniform: every group keeps the same ratio, the largest within the budget (bisection on a continuous ratio);
(b) random: ``--random-plans`` plans drawn from the preset's keep-ratios whose FLOPs lie in [0.9, 1] x budget;
(c) controller: the most accurate plan within the budget of a PPO search over ``--evaluations`` plans (each
    pruned, BatchNorm-recalibrated, fine-tuned ``--search-steps`` steps and validated by ``rlnas/PruneModel-v0``).

Each chosen plan is then pruned from the same trained model and fine-tuned ``--final-steps`` steps (the same
budget for all), and its test accuracy, FLOPs, parameters and latency are measured against the unpruned model's
(batch 1 and 8, one thread; the minimum over ``--rounds`` rounds of ``--repeats`` calls, every model timed in
every round, so that all see the same load of a shared machine). Goal: (c) at least 1 point more accurate than (a)
at the same FLOPs, and at least 1.5x faster than the unpruned model at batch 8.

Resumable: the search is a run folder (``runs/bench_prune_model/search__*``, resumed if interrupted) and every
fine-tuned plan is cached in ``runs/bench_prune_model/finals.json`` under the trained model, its plan and budget.

    python bench/prune_model.py [--evaluations 100] [--search-steps 20] [--final-steps 300] [--rounds 5]
        [--repeats 20] [--no-record]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from _record import record

from rlnas.config import EnvPreset, load_env_preset
from rlnas.envs.prune_evaluator import PruneEvaluator
from rlnas.latency import count_flops, count_params, measure_latency
from rlnas.presets import resolve_preset
from rlnas.pruning.foreign import build_named_model
from rlnas.search import resume_search, run_search
from rlnas.space import KeepPlan
from rlnas.training.trainer import accuracy

BENCH_DIR = Path("runs") / "bench_prune_model"
KEEP_RATIOS = (0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0)
INPUT = (1, 28, 28)


def bench_preset(args: argparse.Namespace, target_mflops: float = 33.0) -> EnvPreset:
    """``prune_resnet18_fashion`` at the bench's scale (one thread everywhere: the machine is shared)."""
    data = yaml.safe_load(resolve_preset("prune_resnet18_fashion", "envs").read_text())
    data["name"] = "prune_resnet18_fashion_bench"
    data["data"] |= {"train_subset": args.train_subset, "val_size": args.val_size}
    data["model"] |= {"keep_ratios": list(KEEP_RATIOS)}
    data["model"]["pretrain"] = {"epochs": args.pretrain_epochs, "batch_size": 128, "lr": 0.003}
    data["train"] |= {"finetune_steps": args.search_steps, "recalibration_batches": 5, "threads": 1}
    data["latency"] |= {"threads": 1, "batch_size": 8, "repeats": 10}
    data["reward"] |= {"target_mflops": round(target_mflops, 4)}
    return load_env_preset(data)


def uniform_keep(evaluator: PruneEvaluator, budget: float) -> float:
    """The largest keep-ratio that, in every group, leaves at most ``budget`` FLOPs (bisection)."""
    groups = len(evaluator.space.groups)
    low, high = 0.05, 1.0
    for _ in range(14):
        mid = (low + high) / 2
        model, _ = evaluator.prune(KeepPlan((mid,) * groups))
        low, high = (mid, high) if count_flops(model, evaluator.input_shape) <= budget else (low, mid)
    return round(low, 4)


def random_plans(evaluator: PruneEvaluator, budget: float, count: int, seed: int) -> list[KeepPlan]:
    """``count`` plans of the preset's keep-ratios with FLOPs in [0.9, 1] x ``budget`` (rejection sampling)."""
    rng, space, found = np.random.default_rng(seed), evaluator.space, []
    while len(found) < count:
        plan = space.decode(space.canonical_action(rng.integers(0, space.nvec)))
        model, _ = evaluator.prune(plan)
        if 0.9 * budget <= count_flops(model, evaluator.input_shape) <= budget and plan not in found:
            found.append(plan)
    return found


def latencies(models: list[torch.nn.Module], evaluator: PruneEvaluator, repeats: int, rounds: int) -> list[dict]:
    """Milliseconds per call of each model at batch 1 and 8 on one thread: the minimum over ``rounds`` rounds of
    ``repeats`` calls, the models interleaved in every round so that all see the same load of a shared machine."""
    best: list[dict[str, float]] = [{} for _ in models]
    for _ in range(rounds):
        for found, model in zip(best, models, strict=True):
            for b in (1, 8):
                cfg = dataclasses.replace(evaluator.preset.latency, batch_size=b, threads=1, repeats=repeats)
                ms = measure_latency(model.eval(), evaluator.input_shape, cfg)
                found[f"latency_b{b}_ms"] = min(ms, found.get(f"latency_b{b}_ms", float("inf")))
    return best


def measured(model: torch.nn.Module, evaluator: PruneEvaluator) -> dict[str, Any]:
    """Test accuracy, FLOPs and parameters of ``model``."""
    test = accuracy(model, evaluator.data.test, batch_size=1000)
    return {"test_accuracy": test, "flops": count_flops(model, evaluator.input_shape), "params": count_params(model)}


def final(evaluator: PruneEvaluator, plan: KeepPlan, steps: int, cache: Path) -> dict[str, Any]:
    """``plan`` pruned, fine-tuned ``steps`` steps and tested (cached under the model, the plan and the budget)."""
    finals = json.loads(cache.read_text()) if cache.is_file() else {}
    key = f"{evaluator.space.fingerprint}/{plan}@{steps}"  # the space's fingerprint digests the trained weights
    if key not in finals:
        started = time.perf_counter()
        model, _ = evaluator.finetuned(plan, steps, progress=f"fine-tune {plan}")
        finals[key] = {"plan": str(plan), **measured(model, evaluator)}
        finals[key]["seconds"] = round(time.perf_counter() - started, 1)
        cache.write_text(json.dumps(finals, indent=1))
    return {k: v for k, v in finals[key].items() if not k.startswith("latency")}  # timed together at the end


def controller_plan(preset: EnvPreset, evaluator: PruneEvaluator, evaluations: int, seed: int) -> dict[str, Any]:
    """The most accurate plan within the budget of a PPO search of ``evaluations`` plans (resumed if stopped)."""
    steps = preset.train.finetune_steps
    run = BENCH_DIR / f"search__{evaluator.space.fingerprint}__e{evaluations}__s{steps}__{seed}"
    started = time.perf_counter()
    if (run / "config.yaml").is_file():
        result = resume_search(run, evaluator=evaluator)
    else:
        result = run_search(preset, "ppo", evaluations=evaluations, run_name=run.name, runs_dir=BENCH_DIR,
                            seed=seed, evaluator=evaluator)  # fmt: skip
    if not result.best:
        raise SystemExit(f"no plan of the search {run} met the budget")
    return {**result.best[0], "run": str(run), "seconds_this_call": round(time.perf_counter() - started, 1)}


def table(rows: list[tuple[str, dict[str, Any]]], reference: dict[str, Any]) -> str:
    lines = [
        "| method | test acc. | MFLOPs (share) | params | ms b1 (speed-up) | ms b8 (speed-up) | plan |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, r in rows:
        share = r["flops"] / reference["flops"]
        b1, b8 = r["latency_b1_ms"], r["latency_b8_ms"]
        lines.append(
            f"| {name} | {100 * r['test_accuracy']:.2f} | {r['flops'] / 1e6:.1f} ({share:.2f}) | {r['params']:,} | "
            f"{b1:.2f} ({reference['latency_b1_ms'] / b1:.2f}x) | {b8:.2f} ({reference['latency_b8_ms'] / b8:.2f}x) "
            f"| `{r.get('plan', '-')}` |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-subset", type=int, default=12000)
    parser.add_argument("--val-size", type=int, default=2000)
    parser.add_argument("--pretrain-epochs", type=int, default=3)
    parser.add_argument("--flops-share", type=float, default=0.5)
    parser.add_argument("--evaluations", type=int, default=100)
    parser.add_argument("--search-steps", type=int, default=20)
    parser.add_argument("--final-steps", type=int, default=300)
    parser.add_argument("--random-plans", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    cfg = bench_preset(args).model
    budget = args.flops_share * count_flops(build_named_model(cfg.name, INPUT, 10, cfg.small_input), INPUT)
    preset = bench_preset(args, budget / 1e6)
    evaluator = PruneEvaluator(preset)  # pre-trains the model once (cached)
    reference = measured(evaluator.model, evaluator)
    print(f"unpruned: {reference}")
    searched = controller_plan(preset, evaluator, args.evaluations, args.seed)
    print(f"controller's plan: {searched['arch']} (val. accuracy {searched['accuracy']:.4f})")

    cache = BENCH_DIR / "finals.json"
    groups = len(evaluator.space.groups)
    plans = [KeepPlan((uniform_keep(evaluator, budget),) * groups)]
    plans += random_plans(evaluator, budget, args.random_plans, args.seed)
    plans.append(evaluator.space.parse(searched["arch"]))
    finals = [final(evaluator, plan, args.final_steps, cache) for plan in plans]
    # a pruned model's latency depends on its shape only: time the pruned (not fine-tuned) copies with the original
    models = [evaluator.model] + [evaluator.prune(plan)[0] for plan in plans]
    for row, timed in zip([reference, *finals], latencies(models, evaluator, args.repeats, args.rounds), strict=True):
        row.update(timed)
    uniform, randoms, controller = finals[0], finals[1:-1], finals[-1]

    rows = [("unpruned (pre-trained, not fine-tuned)", {**reference, "plan": "keep:1"}), ("(a) uniform L1", uniform)]
    rows += [(f"(b) random {i + 1}", r) for i, r in enumerate(randoms)]
    rows.append(("(c) controller", controller))
    random_mean = float(np.mean([r["test_accuracy"] for r in randoms]))
    headlines = {
        "controller_minus_uniform_points": round(100 * (controller["test_accuracy"] - uniform["test_accuracy"]), 2),
        "controller_minus_random_mean_points": round(100 * (controller["test_accuracy"] - random_mean), 2),
        "controller_speedup_b8": round(reference["latency_b8_ms"] / controller["latency_b8_ms"], 2),
        "controller_speedup_b1": round(reference["latency_b1_ms"] / controller["latency_b1_ms"], 2),
        "uniform_speedup_b8": round(reference["latency_b8_ms"] / uniform["latency_b8_ms"], 2),
        "goal_met": bool(
            controller["test_accuracy"] - uniform["test_accuracy"] >= 0.01
            and reference["latency_b8_ms"] / controller["latency_b8_ms"] >= 1.5
        ),
        "wall_minutes_this_call": round((time.perf_counter() - started) / 60, 1),
    }
    about = (
        f"ResNet-18 (torchvision, ImageNet stem, 1 channel) pre-trained by the bench on {args.train_subset} "
        f"Fashion-MNIST training images for {args.pretrain_epochs} epochs, pruned to {args.flops_share:g} of its "
        f"FLOPs (L1 importance, widths multiples of 8). (a) every group at the same keep-ratio; (b) "
        f"{args.random_plans} random plans of keep-ratios {list(KEEP_RATIOS)} within [0.9, 1] of the budget; (c) the "
        f"most accurate plan within the budget of a PPO search of {args.evaluations} plans (each fine-tuned "
        f"{args.search_steps} steps of batch 64 and validated on {args.val_size} held-out training images). Each "
        f"then fine-tuned {args.final_steps} steps of batch 64 and tested on the 10,000 test images; latency on one "
        f"thread, the minimum of {args.rounds} rounds of {args.repeats} calls, all models interleaved in each round. "
        "Goal: (c) >= 1 point more accurate than (a), and >= 1.5x faster at batch 8."
    )
    raw = {"args": vars(args), "unpruned": reference, "search": searched, "uniform": uniform, "random": randoms,
           "controller": controller}  # fmt: skip
    record("prune_model", "Pruning a trained ResNet-18 to half its FLOPs", about, table(rows, reference), headlines,
           raw=raw, append=not args.no_record)  # fmt: skip


if __name__ == "__main__":
    main()
