"""Time modules in interleaved rounds: every entry sampled in many moments, so a burst of load spreads thin.

In each of ``rounds`` passes over all modules (each pass in a fresh random order) every module runs ``warmup``
untimed calls and then ``repeats`` timed ones (with a device synchronisation on CUDA); a round's figure is the
``statistic`` of its calls, and an entry is the ``min`` (the least-disturbed round) or ``median`` of its rounds.
Why: on a shared machine the speed of the same module drifts over minutes; see docs/latency.md.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from rlnas.config import LatencyConfig
from rlnas.latency.measure import Clock, device_sync, time_calls, torch_threads
from rlnas.pruning import build_model, prune_child
from rlnas.seeding import seeded
from rlnas.space.space import Arch, SearchSpace

Aggregate = Literal["min", "median"]


def aggregate_rounds(values: Sequence[float], how: Aggregate) -> float:
    """The ``min`` (least-disturbed) or ``median`` of one entry's per-round figures."""
    if how == "min":
        return min(values)
    if how == "median":
        return statistics.median(values)
    raise ValueError(f"aggregate {how!r}: choose 'min' or 'median'")


def time_modules(
    modules: Sequence[nn.Module],
    inputs: Sequence[torch.Tensor],
    cfg: LatencyConfig,
    rounds: int,
    aggregate: Aggregate,
    seed: int,
    progress: bool,
    desc: str,
    clock: Clock = time.perf_counter,
) -> list[float]:
    """Milliseconds per module: in each of ``rounds`` interleaved passes (shuffled order) the ``cfg.statistic``
    of ``cfg.repeats`` timed calls after a warm-up (``cfg.warmup`` in the first pass, fewer after), exactly as
    :func:`~rlnas.latency.measure.measure_latency` times a child; the per-round figures are then aggregated
    (``min`` or ``median``). ``clock``: seconds, as :func:`time.perf_counter` (tests inject a fake one)."""
    sync = device_sync(torch.device(cfg.device))
    rng = np.random.default_rng(seed)
    per_round: list[list[float]] = [[] for _ in modules]
    bar = tqdm(total=rounds * len(modules), desc=desc, unit="entry", disable=not progress, leave=False)
    with torch_threads(cfg.threads), torch.inference_mode(), bar:
        for r in range(rounds):
            warmup = cfg.warmup if r == 0 else min(cfg.warmup, 3)
            for j in rng.permutation(len(modules)):
                per_round[j].append(time_calls(modules[j], inputs[j], warmup, cfg.repeats, cfg.statistic, sync, clock))
                bar.update()
    return [aggregate_rounds(t, aggregate) for t in per_round]


def pruned_children(space: SearchSpace, archs: Sequence[Arch], seed: int, device: str = "cpu") -> list[nn.Module]:
    """The really pruned children of ``archs`` (eval mode), their weights drawn under ``seed``."""
    with seeded(seed):
        return [prune_child(build_model(space, arch)).to(device).eval() for arch in archs]


def measure_children(
    space: SearchSpace,
    archs: Sequence[Arch],
    cfg: LatencyConfig,
    rounds: int = 15,
    aggregate: Aggregate = "min",
    seed: int = 0,
    progress: bool = False,
    desc: str = "children",
) -> np.ndarray:
    """End-to-end latency (ms) of really pruned children (:func:`build_model` + :func:`prune_child`), timed in
    interleaved rounds and aggregated exactly as the table's entries are (:func:`time_modules`)."""
    models = pruned_children(space, archs, seed, cfg.device)
    inputs = [torch.randn(cfg.batch_size, *space.input_shape, device=cfg.device) for _ in archs]
    return np.array(time_modules(models, inputs, cfg, rounds, aggregate, seed, progress, desc))
