"""Measure a latency table: time every distinct pruned layer once and fit the end-to-end overhead.

Each configuration of :func:`~rlnas.latency.layers.enumerate_layers` is timed in isolation (eval mode,
``torch.inference_mode``, the table's batch size, thread count and device), and ``calibration`` random children
are built, really pruned and timed end to end in the same interleaved rounds (:mod:`rlnas.latency.timing`), so
entries and children see the same machine state; the overhead fits (:mod:`rlnas.latency.overhead`) are made on
them. Distinct configurations are timed once, however many (keep-ratio, input width) pairs lead to them.
"""

from __future__ import annotations

import datetime
import time

import numpy as np
import torch

from rlnas.config import LatencyConfig
from rlnas.latency.device import device_name
from rlnas.latency.layers import enumerate_layers
from rlnas.latency.measure import Clock
from rlnas.latency.overhead import FITS, Fit, fit_overhead
from rlnas.latency.table import LatencyTable
from rlnas.latency.timing import Aggregate, pruned_children, time_modules
from rlnas.seeding import seeded
from rlnas.space.space import SearchSpace


def build_table(
    space: SearchSpace,
    cfg: LatencyConfig,
    *,
    rounds: int = 15,
    aggregate: Aggregate = "min",
    calibration: int = 32,
    fit: Fit = FITS[0],
    seed: int = 0,
    progress: bool = True,
    clock: Clock = time.perf_counter,
) -> LatencyTable:
    """Time every configuration of ``space`` on ``cfg``'s device and fit the overhead on ``calibration``
    random children measured end to end in the same interleaved rounds, so that entries and children see the
    same machine state (0: no overhead term). ``clock``: seconds, as :func:`time.perf_counter`."""
    start = clock()
    dev = torch.device(cfg.device)
    name = device_name(cfg.device)
    enum = enumerate_layers(space)
    configs = enum.configs
    modules, inputs = [], []
    with seeded(seed):
        for config in configs:
            modules.append(enum.build_module(config).to(dev).eval())
            inputs.append(torch.randn(cfg.batch_size, config.c_in, *config.resolution, device=dev))
    rng = np.random.default_rng(seed + 1)
    archs = [space.sample(rng) for _ in range(calibration)]
    modules += pruned_children(space, archs, seed, cfg.device)
    inputs += [torch.randn(cfg.batch_size, *space.input_shape, device=dev) for _ in archs]
    times = time_modules(modules, inputs, cfg, rounds, aggregate, seed, progress, "latency table", clock)
    table = LatencyTable(
        space=space,
        entries=dict(zip(configs, times[: len(configs)], strict=True)),
        device=dev.type,
        device_name=name,
        threads=cfg.threads,
        batch_size=cfg.batch_size,
        measurement={
            "warmup": cfg.warmup,
            "repeats": cfg.repeats,
            "statistic": cfg.statistic,
            "rounds": rounds,
            "aggregate": aggregate,
            "seed": seed,
        },
        created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        _enum=enum,
    )
    if archs:
        measured = np.array(times[len(configs) :])
        summed = np.array([table.summed(a) for a in archs])
        table.calibration = [
            {"arch": str(a), "measured_ms": float(m), "summed_ms": float(s)}
            for a, m, s in zip(archs, measured, summed, strict=True)
        ]
        table.fits = {name: fit_overhead(space, archs, summed, measured, name) for name in FITS}
        table.use_fit(fit)
    table.build_s = clock() - start
    return table
