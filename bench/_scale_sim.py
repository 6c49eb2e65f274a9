"""The driver/worker simulation behind bench/scale_out.py: how many children per second W workers give.

A discrete-event model of one driver (a single server: proposals, store writes, controller updates, one at a
time) and W workers (each evaluates one child at a time, its duration drawn from measured child times).
``sync``: PPO as rlnas runs it on Ray (:class:`rlnas.cluster.vec_env.ThreadVecEnv`): each vectorised step
proposes ``k`` children in one batch, the workers take them as they free up, the step ends when all ``k`` are
stored; after ``n_steps`` steps the controller updates on the rollout (``k * n_steps`` children) while the
workers idle. ``async``: a worker that frees up gets the next child at once (the baselines on Ray); with
``rollout`` set, the driver also updates the controller every ``rollout`` children while the workers go on.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DriverCosts:
    """Measured seconds the driver spends: per stored child, per proposal batch of k, per update of r children."""

    store_s: float
    propose: Callable[[int], float]
    update: Callable[[int], float]


def simulate_sync(
    workers: int, k: int, n_steps: int, children: int, draw: Callable[[], float], costs: DriverCosts
) -> float:
    """Seconds to evaluate ``children`` children with ``k`` per vectorised step and ``n_steps`` steps per update."""
    clock, done = 0.0, 0
    while done < children:
        for _ in range(n_steps):
            clock += costs.propose(k)
            free = [clock] * workers  # when each worker is free
            heapq.heapify(free)
            ends = []
            for _ in range(k):
                start = heapq.heappop(free)
                end = start + draw()
                ends.append(end)
                heapq.heappush(free, end)
            for end in sorted(ends):  # the driver stores each child as it arrives, one at a time
                clock = max(clock, end) + costs.store_s
            done += k
        clock += costs.update(k * n_steps)
    return clock


def simulate_async(
    workers: int, children: int, draw: Callable[[], float], costs: DriverCosts, rollout: int | None = None
) -> float:
    """Seconds to evaluate ``children`` children keeping every worker busy (updates every ``rollout`` children)."""
    driver, ends = 0.0, []  # when the driver is next free; when each running child ends
    for _ in range(min(workers, children)):
        driver += costs.propose(1)
        heapq.heappush(ends, driver + draw())
    started, finished, since_update = len(ends), 0, 0
    while finished < children:
        driver = max(driver, heapq.heappop(ends)) + costs.store_s
        finished += 1
        since_update += 1
        if rollout and since_update >= rollout:
            driver += costs.update(rollout)
            since_update = 0
        if started < children:
            driver += costs.propose(1)
            heapq.heappush(ends, driver + draw())
            started += 1
    return driver


class Draws:
    """Child times drawn from measured ones (bootstrap); ``total`` is the work drawn so far."""

    def __init__(self, child_s: np.ndarray, seed: int) -> None:
        self.child_s, self.rng, self.total = child_s, np.random.default_rng(seed), 0.0

    def __call__(self) -> float:
        drawn = float(self.child_s[self.rng.integers(len(self.child_s))])
        self.total += drawn
        return drawn


def efficiency(seconds: float, draws: Draws, workers: int) -> float:
    """The fraction of the ideal (every worker always busy, a driver that costs nothing) a run reached."""
    return draws.total / workers / seconds
