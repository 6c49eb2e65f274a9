"""Evaluators turn an architecture into measured metrics; they know nothing of Gymnasium or PPO.

``ScratchEvaluator``: build the full-width child, train it, prune it to its keep-ratios (channels removed),
fine-tune, evaluate validation accuracy, measure latency, count FLOPs and parameters.
``TabularEvaluator`` (:mod:`rlnas.envs.tabular`): read the metrics from a benchmark table.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass
from typing import Literal, Protocol

import torch

from rlnas.config import EnvPreset, TrainConfig
from rlnas.latency import count_flops, count_params, measure_latency
from rlnas.pruning import prune_child
from rlnas.space import Arch, ChildNet, SearchSpace, build_model
from rlnas.training.data import DataSplits, Split, dataset_shape, load_data
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


def train_prune_finetune(
    model: ChildNet,
    data: Split,
    train: TrainConfig,
    *,
    seed: int,
    device: str | torch.device = "cpu",
    steps: int | None = None,
    finetune_steps: int | None = None,
    progress: bool = False,
) -> tuple[float, float, float]:
    """Train the full-width ``model``, prune it to its keep-ratios, recalibrate BatchNorm, fine-tune it.

    The budget is ``train.steps`` and ``train.finetune_steps`` unless ``steps``/``finetune_steps`` are given.
    Returns the seconds spent training, pruning (with recalibration) and fine-tuning; raises
    :class:`~rlnas.training.trainer.TrainingDiverged` when a loss becomes NaN/inf.
    """
    common = {"lr": train.lr, "batch_size": train.batch_size, "weight_decay": train.weight_decay}
    common |= {"optimizer": train.optimizer, "device": device}
    clock = time.perf_counter()
    steps = train.steps if steps is None else steps
    fit(model, data, steps=steps, seed=seed, progress="train" if progress else None, **common)
    train_s, clock = time.perf_counter() - clock, time.perf_counter()
    prune_child(model)
    batches = train.recalibration_batches
    recalibrate_bn(model, data, batches=batches, batch_size=train.batch_size, device=device, seed=seed)
    prune_s, clock = time.perf_counter() - clock, time.perf_counter()
    common["lr"] = train.finetune_lr
    finetune_steps = train.finetune_steps if finetune_steps is None else finetune_steps
    fit(model, data, steps=finetune_steps, seed=seed + 1, progress="fine-tune" if progress else None, **common)
    return train_s, prune_s, time.perf_counter() - clock


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
        cfg = self.preset
        seed = child_seed(cfg.seed, arch)
        torch.manual_seed(seed)
        model = build_model(self.space, arch)
        params_unpruned = count_params(model)
        try:
            train_s, prune_s, finetune_s = train_prune_finetune(
                model, self.data.train, cfg.train, seed=seed, device=self.device
            )
        except TrainingDiverged as err:
            return EvalResult(str(arch), "diverged", 0.0, 0.0, 0, 0, params_unpruned, reason=str(err))
        clock = time.perf_counter()
        acc = accuracy(model, self.data.val, batch_size=cfg.train.eval_batch_size, device=self.device)
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
    """The evaluator the preset asks for (``scratch`` trains children; ``tabular`` looks them up)."""
    if preset.evaluator == "tabular":
        from rlnas.envs.tabular import TabularEvaluator

        return TabularEvaluator(preset)
    return ScratchEvaluator(preset, device)
