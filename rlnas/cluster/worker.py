"""What one Ray actor holds: the preset's data and evaluator, built once, then one child per call."""

from __future__ import annotations

from typing import Any

import torch

from rlnas.config import EnvPreset
from rlnas.envs.evaluator_factory import make_evaluator
from rlnas.envs.evaluators import EvalResult, evaluator_settings
from rlnas.space import Arch
from rlnas.training.data import DataSplits
from rlnas.training.supernet import Supernet


class ChildWorker:
    """The state of a Ray actor (wrapped with ``ray.remote`` by :mod:`rlnas.cluster.backend`).

    ``data`` and ``supernet`` come from Ray's object store, put there once by the driver, so every worker
    evaluates on the same data split and supernet and no node needs its own copy of the data set.
    """

    def __init__(
        self, preset: EnvPreset, device: str, data: DataSplits | None, supernet: Supernet | None, threads: int
    ) -> None:
        torch.set_num_threads(threads)  # the CPUs Ray gave this actor (the preset's train.threads wins if set)
        self.evaluator = make_evaluator(preset, device, supernet, data)

    def settings(self) -> dict[str, Any]:
        """The evaluator's settings: with the architecture, the cache key its results are stored under."""
        return evaluator_settings(self.evaluator)

    def evaluate(self, arch: Arch) -> EvalResult:
        """Evaluate one child."""
        return self.evaluator.evaluate(arch)
