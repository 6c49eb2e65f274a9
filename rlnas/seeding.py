"""Seeded work that leaves the caller's random stream alone."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block on torch's CPU generator seeded with ``seed``, restoring the caller's state after it.

    Building a model initialises its layers from torch's global generator, which the controller samples from too:
    seeded, a child's weights do not depend on the controller's stream and do not move it (a resumed search
    replays its steps).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
