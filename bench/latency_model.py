"""How well the per-device latency lookup table predicts measured latency, against the FLOPs proxy.

On the default preset's space, at the latency settings a search on that preset uses (its ``latency`` section:
thread count and batch size, on the CPU; batch 8 and one thread for ``fashion_mnist``), and at batch 1 beside
them unless ``--batch-sizes`` says otherwise: build the table (every pruned layer configuration timed in
isolation, the overhead fitted on random children measured end to end), then measure 50 other random pruned
children end to end and compare. A latency budget is judged at the settings it is set in, so the headline
figures are the preset's; the other settings' figures carry a ``_b<batch>`` suffix. Reports MAPE, max error
and rank correlations (Kendall tau, Spearman rho) for the table under each overhead fit, the same rank
correlations for the FLOPs of the pruned child, the prediction time per child, and the noise floor: the same
children measured a second time, compared with the first measurement (no predictor can agree with a
measurement better than the measurement agrees with itself).

    python bench/latency_model.py [--env fashion_mnist] [--n 50] [--batch-sizes 8 1] [--threads 1]
                                  [--plot latency_model.png] [--no-record]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch
from _record import record

from rlnas.config import load_env_preset
from rlnas.envs.evaluators import space_for
from rlnas.latency.build import build_table
from rlnas.latency.overhead import FITS, Overhead
from rlnas.latency.timing import measure_children
from rlnas.latency.validate import kendall_tau, plot_validation, spearman_rho, validate


def errors(predicted: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    pct = 100.0 * np.abs(predicted - measured) / measured
    return {
        "mape": float(pct.mean()),
        "max": float(pct.max()),
        "tau": kendall_tau(predicted, measured),
        "rho": spearman_rho(predicted, measured),
    }


def describe(overhead: Overhead) -> str:
    if overhead.per_operator_ms:
        per_op = ", ".join(f"{op} {1000 * ms:.0f}" for op, ms in overhead.per_operator_ms.items())
        return f"us per layer: {per_op}"
    return f"intercept {overhead.intercept_ms:.3f} ms, scale {overhead.scale:.3f}"


def validate_setting(preset, space, cfg, args) -> tuple[str, dict[str, float]]:
    """Build, validate and retest the table of ``space`` at ``cfg``'s thread count and batch size: the markdown
    table of every predictor and the headline figures."""
    torch.set_num_threads(cfg.threads)
    table = build_table(
        space, cfg, rounds=args.rounds, aggregate=args.aggregate, calibration=args.calibration, seed=args.seed
    )
    if args.table:
        table.save(args.table.format(batch=cfg.batch_size))
    result = validate(table, space, n=args.n, seed=args.seed + 1000, rounds=args.rounds, aggregate=args.aggregate)
    archs = [space.parse(a) for a in result.archs]
    retest = measure_children(space, archs, cfg, args.rounds, args.aggregate, seed=args.seed + 2000, progress=True)

    n_pred = 20_000
    rng = np.random.default_rng(args.seed)
    pool = [space.sample(rng) for _ in range(1000)]
    start = time.perf_counter()
    for i in range(n_pred):
        table.predict(pool[i % len(pool)])
    predict_us = (time.perf_counter() - start) / n_pred * 1e6

    rows, by_fit = [], {}
    for fit in (*FITS, "none"):
        table.use_fit(fit)
        predicted = table.predict_many(archs)
        by_fit[fit] = e = errors(predicted, result.measured)
        rows.append(
            f"| table, overhead fit `{fit}` ({describe(table.overhead)}) | "
            f"{e['mape']:.1f} | {e['max']:.1f} | {e['tau']:.3f} | {e['rho']:.3f} |"
        )
    table.use_fit(FITS[0])
    flops = {"tau": result.flops_kendall_tau, "rho": result.flops_spearman_rho}
    rows.append(f"| FLOPs of the pruned child (ranks only) | - | - | {flops['tau']:.3f} | {flops['rho']:.3f} |")
    floor = errors(retest, result.measured)
    rows.append(
        f"| noise floor: a second measurement of the same children | {floor['mape']:.1f} | {floor['max']:.1f} | "
        f"{floor['tau']:.3f} | {floor['rho']:.3f} |"
    )
    setting = f"cpu, {cfg.threads} thread(s), batch {cfg.batch_size}"
    if args.plot:
        result.predicted = table.predict_many(archs)
        path = args.plot.replace(".png", f"_b{cfg.batch_size}.png")
        plot_validation(result, path, title=f"{preset.name}: {args.n} random pruned children, {setting}")

    meas = table.measurement
    text = "\n".join(
        [
            f"**{setting}**: {len(table.entries)} table entries; every entry and every end-to-end figure is the "
            f"{meas['aggregate']} over {meas['rounds']} interleaved rounds of the {cfg.statistic} of "
            f"{cfg.repeats} calls (warm-up {cfg.warmup}). Overhead fitted on {args.calibration} random "
            f"children; validated on {args.n} others "
            f"(measured {result.measured.min():.2f}-{result.measured.max():.2f} ms).",
            "",
            "| predictor | MAPE (%) | max abs error (%) | Kendall tau | Spearman rho |",
            "|---|---:|---:|---:|---:|",
            *rows,
            "",
            f"Table build {table.build_s:.1f} s; validation {result.seconds:.1f} s; prediction {predict_us:.1f} us "
            "per child.",
        ]
    )
    best = by_fit[FITS[0]]
    headlines = {
        "table_build_s": round(table.build_s, 1),
        "table_entries": len(table.entries),
        "mape_pct": round(best["mape"], 2),
        "max_abs_error_pct": round(best["max"], 1),
        "kendall_tau": round(best["tau"], 3),
        "spearman_rho": round(best["rho"], 3),
        "flops_kendall_tau": round(flops["tau"], 3),
        "flops_spearman_rho": round(flops["rho"], 3),
        "retest_mape_pct": round(floor["mape"], 2),
        "retest_kendall_tau": round(floor["tau"], 3),
        "predict_us_per_child": round(predict_us, 2),
    }
    return text, headlines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="fashion_mnist")
    parser.add_argument("--n", type=int, default=50, help="validation children")
    parser.add_argument(
        "--batch-sizes", type=int, nargs="+", help="batch sizes to validate at (default: the preset's, then 1)"
    )
    parser.add_argument("--threads", type=int, help="torch threads (default: the preset's latency.threads)")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved measurement rounds")
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per round")
    parser.add_argument("--aggregate", choices=["min", "median"], default="min")
    parser.add_argument("--calibration", type=int, default=32, help="children measured to fit the overhead")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--table", help="also save each table to this JSON file ({batch} is replaced)")
    parser.add_argument("--plot", help="write a scatter plot PNG per batch size here (name_b<batch>.png)")
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to BENCHMARKS.md")
    args = parser.parse_args()

    preset = load_env_preset(args.env)
    space = space_for(preset)
    own = preset.latency.batch_size
    batch_sizes = list(dict.fromkeys(args.batch_sizes or [own, 1]))
    threads = args.threads or preset.latency.threads
    sections, headlines = [], {}
    for batch in batch_sizes:
        cfg = dataclasses.replace(preset.latency, device="cpu", threads=threads, batch_size=batch, repeats=args.repeats)
        text, figures = validate_setting(preset, space, cfg, args)
        sections.append(text)
        suffix = "" if batch == batch_sizes[0] else f"_b{batch}"
        headlines |= {f"{name}{suffix}": value for name, value in figures.items()}
    intro = (
        f"Preset `{preset.name}` (space {space.fingerprint}); its own latency settings: {preset.latency.threads} "
        f"thread(s), batch {own}. Headline figures: batch {batch_sizes[0]}; others suffixed `_b<batch>`."
    )
    record(
        "latency_model",
        "Latency lookup table vs measured latency (bench/latency_model.py)",
        "How well the latency lookup table predicts measured latency, against the FLOPs proxy, at the preset's own "
        "latency settings (where a latency budget is set) and at batch 1. Goal: MAPE <= 5% and Kendall tau >= 0.9, "
        "beside the retest noise floor.",
        "\n\n".join([intro, *sections]),
        headlines,
        append=not args.no_record,
    )


if __name__ == "__main__":
    main()
