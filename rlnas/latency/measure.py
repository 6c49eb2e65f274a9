"""Measure inference latency on a device: fixed threads and batch, warm-up, repetitions, min or median."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from rlnas.config import LatencyConfig

Clock = Callable[[], float]
"""Seconds from an arbitrary origin, as :func:`time.perf_counter`."""


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(threads)``, restoring the previous count after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def summarise_times(seconds: list[float], statistic: str) -> float:
    """Milliseconds: the ``min`` or ``median`` of timed calls given in seconds."""
    return (min(seconds) if statistic == "min" else statistics.median(seconds)) * 1000.0


@torch.inference_mode()
def measure_latency(
    model: nn.Module,
    input_shape: tuple[int, ...],
    cfg: LatencyConfig,
    clock: Clock = time.perf_counter,
) -> float:
    """Wall-clock milliseconds of one forward pass (eval mode) of a ``cfg.batch_size`` batch: the
    ``cfg.statistic`` (min or median) of ``cfg.repeats`` timed calls after ``cfg.warmup`` untimed ones.
    ``clock``: seconds, as :func:`time.perf_counter` (tests inject a fake one)."""
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("latency.device is cuda but no CUDA device is available; set latency.device: cpu")
    model = model.to(device).eval()
    inputs = torch.Generator().manual_seed(0)  # the caller's (a controller's) random stream stays untouched
    x = torch.randn(cfg.batch_size, *input_shape, generator=inputs).to(device)
    with torch_threads(cfg.threads):
        return time_calls(model, x, cfg.warmup, cfg.repeats, cfg.statistic, device_sync(device), clock)


def device_sync(device: torch.device) -> Callable[[], None]:
    """Wait for the device's queued work (CUDA), so a timed call ends when its computation does."""
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def time_calls(
    module: nn.Module,
    x: torch.Tensor,
    warmup: int,
    repeats: int,
    statistic: str,
    sync: Callable[[], None],
    clock: Clock = time.perf_counter,
) -> float:
    """Milliseconds: the ``statistic`` of ``repeats`` timed calls of ``module(x)`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        module(x)
    sync()
    times = []
    for _ in range(repeats):
        start = clock()
        module(x)
        sync()
        times.append(clock() - start)
    return summarise_times(times, statistic)
