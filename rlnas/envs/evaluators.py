"""Evaluators turn an architecture into measured metrics; they know nothing of Gymnasium or PPO.

``ScratchEvaluator``: build the full-width child, train it, prune it to its keep-ratios (channels removed),
fine-tune, evaluate validation accuracy, measure latency, count FLOPs and parameters.
``SupernetEvaluator`` (:mod:`rlnas.envs.supernet_evaluator`): inherit the child's weights from a trained
weight-sharing supernet, recalibrate BatchNorm, evaluate and measure.
``TabularEvaluator`` (:mod:`rlnas.envs.tabular`): read the metrics from a benchmark table.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass
from typing import Literal, Protocol

import torch

from rlnas.config import EnvPreset
from rlnas.latency import count_flops, count_params, measure_latency
from rlnas.pruning import prune_child
from rlnas.space import Arch, SearchSpace, build_model
from rlnas.training.data import DataSplits, dataset_shape, load_data
from rlnas.training.trainer import TrainingDiverged, accuracy, fit, recalibrate_bn


@dataclass(frozen=True)
class EvalResult:
    """What one evaluation measured. ``accuracy`` is validation accuracy in [0, 1].

    ``record_key``: for table lookups, the key of the record that answered (equivalent children share one).
    """

    arch: str
    status: Literal["ok", "diverged"]
    accuracy: float
    latency_ms: float
    flops: int
    params: int
    params_unpruned: int
    train_s: float = 0.0
    prune_s: float = 0.0
    finetune_s: float = 0.0
    eval_s: float = 0.0
    latency_s: float = 0.0
    reason: str = ""
    record_key: str = ""

    def as_dict(self) -> dict:
        """Plain Python values, for ``info`` and the store."""
        return asdict(self)


class Evaluator(Protocol):
    """Anything that evaluates architectures of ``space``."""

    space: SearchSpace

    def evaluate(self, arch: Arch) -> EvalResult:
        """Evaluate one architecture."""
        ...


def child_seed(base_seed: int, arch: Arch) -> int:
    """A seed derived from the architecture, so the same child trains the same way in any run or process."""
    digest = hashlib.sha256(f"{base_seed}:{arch}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def space_for(preset: EnvPreset) -> SearchSpace:
    """The preset's search space (input shape and classes from its data set, without loading it)."""
    input_shape, num_classes = dataset_shape(preset.data)
    return SearchSpace(preset.space, input_shape, num_classes)


class ScratchEvaluator:
    """Train every child from scratch on the preset's budget, prune it for real, fine-tune, evaluate."""

    def __init__(self, preset: EnvPreset, device: str = "cpu", data: DataSplits | None = None) -> None:
        self.preset = preset
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("--device cuda was asked for but torch sees no CUDA device; use --device cpu")
        self.data = data if data is not None else load_data(preset.data)
        self.space = space_for(preset)
        if preset.train.threads:
            torch.set_num_threads(preset.train.threads)  # for the process: the controller trains with it too

    def evaluate(self, arch: Arch) -> EvalResult:
        """Train, prune, fine-tune, evaluate and measure one child."""
        t, cfg = self.preset.train, self.preset
        seed = child_seed(cfg.seed, arch)
        torch.manual_seed(seed)
        model = build_model(self.space, arch)
        params_unpruned = count_params(model)
        common = {"lr": t.lr, "batch_size": t.batch_size, "weight_decay": t.weight_decay}
        common |= {"optimizer": t.optimizer, "device": self.device}
        clock = time.perf_counter()
        try:
            fit(model, self.data.train, steps=t.steps, seed=seed, **common)
            train_s, clock = time.perf_counter() - clock, time.perf_counter()
            prune_child(model, arch)
            recalibrate_bn(
                model,
                self.data.train,
                batches=t.recalibration_batches,
                batch_size=t.batch_size,
                device=self.device,
                seed=seed,
            )
            prune_s, clock = time.perf_counter() - clock, time.perf_counter()
            common["lr"] = t.finetune_lr
            fit(model, self.data.train, steps=t.finetune_steps, seed=seed + 1, **common)
        except TrainingDiverged as err:
            return EvalResult(str(arch), "diverged", 0.0, 0.0, 0, 0, params_unpruned, reason=str(err))
        finetune_s, clock = time.perf_counter() - clock, time.perf_counter()
        acc = accuracy(model, self.data.val, batch_size=t.eval_batch_size, device=self.device)
        eval_s, clock = time.perf_counter() - clock, time.perf_counter()
        latency_ms = measure_latency(model, self.space.input_shape, cfg.latency)
        latency_s = time.perf_counter() - clock
        return EvalResult(
            arch=str(arch),
            status="ok",
            accuracy=acc,
            latency_ms=latency_ms,
            flops=count_flops(model, self.space.input_shape),
            params=count_params(model),
            params_unpruned=params_unpruned,
            train_s=train_s,
            prune_s=prune_s,
            finetune_s=finetune_s,
            eval_s=eval_s,
            latency_s=latency_s,
        )


def make_evaluator(preset: EnvPreset, device: str = "cpu") -> Evaluator:
    """The evaluator the preset asks for (``scratch`` trains children; ``tabular`` looks them up).

    ``supernet`` trains a supernet first (in memory; ``rlnas search`` saves it in the run folder).
    """
    if preset.evaluator == "tabular":
        from rlnas.envs.tabular import TabularEvaluator

        return TabularEvaluator(preset)
    if preset.evaluator == "supernet":
        from rlnas.envs.supernet_evaluator import SupernetEvaluator, train_preset_supernet

        data = load_data(preset.data)
        return SupernetEvaluator(preset, train_preset_supernet(preset, data, device=device), device, data)
    return ScratchEvaluator(preset, device)
