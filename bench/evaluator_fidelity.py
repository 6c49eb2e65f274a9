"""Evaluator fidelity where it matters: does the search's evaluator rank children as the export's training does?

Children: every child ``bench/end_to_end.py`` trained with the given budget (``--steps``, ``--finetune-steps``,
``--init``; its cache ``bench/results/end_to_end_children.json``): uniform members and searched children.
Truth: their test accuracy after that training. Evaluators, each timed per child:

- ``inherited``: the preset's supernet evaluator as shipped (inherited weights, BatchNorm recalibrated);
- ``finetune N``: the same with ``supernet.finetune_steps = N`` for each ``--finetune`` N (a short fine-tune of
  each extracted child);
- ``scratch N + N/4``: the scratch evaluator at ``train.steps = N`` for each ``--scratch`` N (train from scratch,
  prune, fine-tune N/4 steps, score on the validation split): short real training;
- ``FLOPs``: the child's FLOPs (bigger ranks higher), a zero-cost reference;
- ``predictor``: a ridge regression from the child's choices (one-hot operator and keep-ratio per layer) and its
  inherited accuracy (a second variant adds its log FLOPs) to its test accuracy, scored leave-one-out: a learned
  accuracy predictor trained on the children trained so far, each child's score from a fit on all the others.

Scores are kept in ``bench/.cache/end_to_end/fidelity_scores.json`` (by supernet weights, fine-tune steps and
architecture). Figures: Kendall tau (``scipy.stats.kendalltau``, tau-b) against test accuracy, over all children
and over the better half by test accuracy (where a search's winner is decided), and how many of the evaluator's
top 5 are in the true top 5 and top 10. Goal: tau >= 0.7 and the top 5 within the true top 10.

    python bench/evaluator_fidelity.py [--supernet PATH] [--steps 300 --finetune-steps 100 --init scratch]
        [--finetune 20] [--set train.threads=1] [--no-record]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
from _record import record
from end_to_end import WORK, read_cache, trained_supernet, training_key
from scipy.stats import kendalltau
from sklearn.linear_model import RidgeCV

from rlnas.child_training import INITS
from rlnas.config import load_env_preset
from rlnas.envs.evaluators import Evaluator, ScratchEvaluator, space_for
from rlnas.envs.supernet_evaluator import SupernetEvaluator, weights_digest
from rlnas.export import DEFAULT_INIT
from rlnas.space import Arch
from rlnas.training.data import load_data

SCORES = WORK / "fidelity_scores.json"  # each evaluator's score per child and supernet, so a re-run adds only new ones


def evaluated(evaluator: Evaluator, arch: Arch, setting: list, saved: dict) -> tuple[float, float]:
    """The evaluator's accuracy for ``arch`` and the seconds it took, from ``SCORES`` when already measured."""
    key = json.dumps([*setting, str(arch)])
    if key not in saved:
        started = time.perf_counter()
        saved[key] = [evaluator.evaluate(arch).accuracy, time.perf_counter() - started]
        SCORES.parent.mkdir(parents=True, exist_ok=True)
        SCORES.write_text(json.dumps(saved))
    return saved[key][0], saved[key][1]


def overlaps(score: list[float], truth: list[float]) -> tuple[int, int]:
    """How many of the 5 best by ``score`` are among the 5 and the 10 best by ``truth``."""
    top5 = set(np.argsort(score)[::-1][:5])
    ranked = np.argsort(truth)[::-1]
    return len(top5 & set(ranked[:5])), len(top5 & set(ranked[:10]))


def predictor_scores(space, archs: list[str], extra: list[list[float]], truth: list[float]) -> list[float]:
    """Leave-one-out predictions of a ridge regression on one-hot choices and the ``extra`` features per child."""
    x = np.array([space.encode(space.parse(a)) for a in archs])
    features = [np.eye(n)[x[:, i]] for i, n in enumerate(space.nvec)] + [np.array(extra)]
    onehot = np.concatenate(features, axis=1)
    y = np.array(truth)
    scores = []
    for i in range(len(y)):
        rest = np.arange(len(y)) != i
        model = RidgeCV(alphas=np.logspace(-3, 2, 12)).fit(onehot[rest], y[rest])
        scores.append(float(model.predict(onehot[i : i + 1])[0]))
    return scores


def top_half_tau(score: list[float], truth: list[float]) -> float:
    """Kendall tau among the better half of the children by truth: the ranking a search's winner depends on."""
    keep = np.asarray(truth) >= np.median(truth)
    return float(kendalltau(np.asarray(score)[keep], np.asarray(truth)[keep]).statistic)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="fashion_mnist")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="env preset override")
    parser.add_argument(
        "--supernet", type=Path, help="the supernet bench/end_to_end.py searched with (default: its own)"
    )
    parser.add_argument("--steps", type=int, help="the training budget of the cached children (default: 2 epochs)")
    parser.add_argument("--finetune-steps", type=int, help="(default: 1 epoch)")
    parser.add_argument("--init", choices=INITS, default=DEFAULT_INIT)
    parser.add_argument("--finetune", type=int, nargs="*", default=[20], help="fine-tune steps to try per child")
    parser.add_argument(
        "--scratch", type=int, nargs="*", default=[], help="training steps of a scratch evaluator to try per child"
    )
    parser.add_argument("--no-record", action="store_true", help="print only; do not write BENCHMARKS.md")
    args = parser.parse_args()
    preset = load_env_preset(args.env, ["latency.source=flops", *args.set])  # latency plays no part here
    space, data = space_for(preset), load_data(preset.data)
    per_epoch = math.ceil(len(data.train) / preset.train.batch_size)
    steps = args.steps if args.steps is not None else 2 * per_epoch
    finetune_steps = args.finetune_steps if args.finetune_steps is not None else per_epoch
    path, supernet = trained_supernet(preset, data, args.supernet)
    children = read_cache().get(training_key(preset, steps, finetune_steps, args.init, supernet), {})
    if len(children) < 2:
        raise SystemExit("fewer than 2 trained children with this budget: run bench/end_to_end.py first")
    archs = sorted(children)
    truth = [children[a]["test_accuracy"] for a in archs]
    weights, saved = weights_digest(supernet), json.loads(SCORES.read_text()) if SCORES.is_file() else {}

    scores: dict[str, list[float]] = {}
    seconds: dict[str, float] = {}
    for n in [0, *args.finetune]:
        tuned = dataclasses.replace(preset, supernet=dataclasses.replace(preset.supernet, finetune_steps=n))
        evaluator = SupernetEvaluator(tuned, supernet, data=data)
        name = "inherited" if n == 0 else f"finetune {n}"
        results = [evaluated(evaluator, space.parse(a), [weights, n], saved) for a in archs]
        scores[name] = [r[0] for r in results]
        seconds[name] = sum(r[1] for r in results) / len(archs)
        print(f"{name}: tau {kendalltau(scores[name], truth).statistic:.3f}, {seconds[name]:.2f} s per child")
    for n in args.scratch:
        train = dataclasses.replace(preset.train, steps=n, finetune_steps=n // 4)
        evaluator = ScratchEvaluator(dataclasses.replace(preset, train=train), data=data)
        name = f"scratch {n} + {n // 4}"
        results = [evaluated(evaluator, space.parse(a), ["scratch", n, n // 4], saved) for a in archs]
        scores[name] = [r[0] for r in results]
        seconds[name] = sum(r[1] for r in results) / len(archs)
        print(f"{name}: tau {kendalltau(scores[name], truth).statistic:.3f}, {seconds[name]:.2f} s per child")
    scores["FLOPs"] = [float(children[a]["flops"]) for a in archs]  # a zero-cost reference: bigger is better
    seconds["FLOPs"] = 0.0
    log_flops = [math.log(f) for f in scores["FLOPs"]]
    for name, extra in {
        "predictor (choices, inherited)": [[a] for a in scores["inherited"]],
        "predictor (choices, inherited, log FLOPs)": [
            [a, f] for a, f in zip(scores["inherited"], log_flops, strict=True)
        ],
    }.items():
        started = time.perf_counter()
        scores[name] = predictor_scores(space, archs, extra, truth)
        seconds[name] = seconds["inherited"] + (time.perf_counter() - started) / len(archs)

    rows, headlines = [], {"children": len(archs)}
    for name, score in scores.items():
        tau = kendalltau(score, truth).statistic
        in5, in10 = overlaps(score, truth)
        half = top_half_tau(score, truth)
        rows.append(f"| {name} | {tau:.3f} | {half:.3f} | {in5}/5 | {in10}/5 | {seconds[name]:.2f} |")
        headlines[f"{name}: kendall tau"] = round(float(tau), 3)
        headlines[f"{name}: kendall tau, better half"] = round(half, 3)
        headlines[f"{name}: top-5 within true top-10"] = f"{in10}/5"
    table = "\n".join(
        [
            f"Preset `{preset.name}`, {len(archs)} children of `bench/end_to_end.py` (uniform members and searched "
            f"children), truth: test accuracy after {steps} + {finetune_steps} steps ({args.init}); test accuracy "
            f"{min(truth):.4f}-{max(truth):.4f}. Supernet `{path.name}`. Seconds per child on this "
            "machine at the time of the run (the predictor adds its fit to the inherited evaluation).",
            "",
            "| evaluator | Kendall tau | tau, better half | top-5 in true top-5 | top-5 in true top-10 | s per child |",
            "|---|---:|---:|---:|---:|---:|",
            *rows,
        ]
    )
    record(
        "evaluator_fidelity",
        "Evaluator fidelity against the export's training (bench/evaluator_fidelity.py)",
        "Kendall tau and top-5 overlap between the search's evaluator and test accuracy after the export training "
        "budget, over the children bench/end_to_end.py trained. Goal: tau >= 0.7, top 5 within the true top 10.",
        table,
        headlines,
        raw={"archs": archs, "truth": truth, "scores": scores, "seconds": seconds},
        append=not args.no_record,
    )


if __name__ == "__main__":
    main()
