"""Evaluators turn an architecture into measured metrics; they know nothing of Gymnasium or PPO.

``ScratchEvaluator``: build the full-width child, train it, prune it to its keep-ratios (channels removed),
fine-tune, evaluate validation accuracy, measure latency, count FLOPs and parameters.
``SupernetEvaluator`` (:mod:`rlnas.envs.supernet_evaluator`): inherit the child's weights from a trained
weight-sharing supernet, recalibrate BatchNorm, evaluate and measure.
``TabularEvaluator`` (:mod:`rlnas.envs.tabular`): read the metrics from a benchmark table.
:func:`rlnas.envs.evaluator_factory.make_evaluator` builds the one a preset asks for.

Every evaluator has ``settings``: everything besides the architecture that decides its result. With the
space fingerprint and the architecture it makes the :func:`cache_key` under which a result is stored and reused.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, Protocol

import torch

from rlnas.config import EnvPreset, TrainConfig
from rlnas.latency import count_flops, count_params
from rlnas.latency.source import LatencySource, latency_source
from rlnas.pruning import build_model, prune_child
from rlnas.seeding import seeded
from rlnas.space import Arch, ChildNet, SearchSpace
from rlnas.training.data import DataSplits, Split, dataset_shape, load_data
from rlnas.training.trainer import TrainingDiverged, accuracy, fit, recalibrate_bn


@dataclass(frozen=True)
class EvalResult:
    """What one evaluation measured. ``accuracy`` is validation accuracy in [0, 1].

    ``status``: ``diverged`` (training failed), ``failed`` (its evaluation crashed twice, e.g. a cluster worker was
    lost; :mod:`rlnas.cluster`) and ``reward_error`` (:func:`rlnas.envs.reward.reward_for`) children get the failure
    reward; ``reason`` says why.
    ``record_key``: for table lookups, the key of the record that answered (equivalent children share one).
    ``latency_source``: where ``latency_ms`` came from (``measured``, ``table``, ``flops``, ``benchmark``).
    """

    arch: str
    status: Literal["ok", "diverged", "failed", "reward_error"]
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
    latency_source: str = ""

    def as_dict(self) -> dict:
        """Plain Python values, for ``info`` and the store."""
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> EvalResult:
        """The result a stored record (``as_dict`` plus other keys) was made from."""
        return cls(**{f.name: record[f.name] for f in fields(cls) if f.name in record})


class Evaluator(Protocol):
    """Anything that evaluates architectures of ``space``."""

    space: SearchSpace

    def evaluate(self, arch: Arch) -> EvalResult:
        """Evaluate one architecture."""
        ...


def evaluator_settings(evaluator: Evaluator) -> dict[str, Any]:
    """What besides the architecture decides ``evaluator``'s result (its ``settings``, else its class name)."""
    return getattr(evaluator, "settings", None) or {"evaluator": type(evaluator).__qualname__}


def cache_key(fingerprint: str, arch: Arch | str, settings: dict[str, Any]) -> str:
    """The key an evaluation is stored and reused under: space fingerprint, architecture, evaluator settings."""
    payload = json.dumps({"space": fingerprint, "arch": str(arch), "evaluator": settings}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def child_seed(base_seed: int, arch: Arch) -> int:
    """A seed derived from the architecture, so the same child trains the same way in any run or process."""
    digest = hashlib.sha256(f"{base_seed}:{arch}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def space_for(preset: EnvPreset) -> SearchSpace:
    """The preset's search space (input shape and classes from its data set, without loading it).

    A preset with a ``model`` section has no declared space: its space is its evaluator's (the model's groups).
    """
    if preset.model is not None:
        raise ValueError(
            f"env preset {preset.name!r} prunes a model: its space comes from the trained model's groups; "
            "build its evaluator (rlnas.envs.evaluator_factory.make_evaluator) and use evaluator.space"
        )
    input_shape, num_classes = dataset_shape(preset.data)
    return SearchSpace(preset.space, input_shape, num_classes)


def checked_device(device: str) -> torch.device:
    """``device`` as a torch device; a clear error when CUDA is asked for but absent."""
    try:
        checked = torch.device(device)
    except RuntimeError:
        raise ValueError(f"device {device!r} is not a torch device: use cpu or cuda") from None
    if checked.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but torch sees no CUDA device; use --device cpu")
    return checked


def shared_settings(preset: EnvPreset, latency: LatencySource) -> dict[str, Any]:
    """The settings every training evaluator's results depend on: data split, latency source, seed."""
    data = {k: v for k, v in asdict(preset.data).items() if k not in ("root", "download")}
    return {"data": data, "latency": asdict(preset.latency), "latency_source": latency.name, "seed": preset.seed}


def measured_result(
    model: ChildNet,
    arch: Arch,
    val: Split,
    *,
    eval_batch_size: int,
    device: torch.device,
    latency: LatencySource,
    input_shape: tuple[int, ...],
    params_unpruned: int,
    **timings: float,
) -> EvalResult:
    """Evaluate the pruned ``model`` on ``val``, take its latency, count FLOPs and parameters.

    ``timings``: the seconds its evaluator spent before (``train_s``, ``prune_s``, ``finetune_s``).
    """
    clock = time.perf_counter()
    acc = accuracy(model, val, batch_size=eval_batch_size, device=device)
    eval_s, clock = time.perf_counter() - clock, time.perf_counter()
    latency_ms = latency(model, arch)
    return EvalResult(
        arch=str(arch),
        status="ok",
        accuracy=acc,
        latency_ms=latency_ms,
        flops=count_flops(model, input_shape),
        params=count_params(model),
        params_unpruned=params_unpruned,
        eval_s=eval_s,
        latency_s=time.perf_counter() - clock,
        latency_source=latency.name,
        **timings,
    )


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
    """Train every child from scratch on the preset's budget, prune it for real, fine-tune, evaluate.

    Each evaluation draws only from streams seeded by :func:`child_seed` (the preset's seed and the child), never
    from the caller's global RNG: a child answered from the store instead of trained leaves the controller's
    random stream exactly where a training would have, so a resumed search replays its steps.
    """

    def __init__(self, preset: EnvPreset, device: str = "cpu", data: DataSplits | None = None) -> None:
        self.preset = preset
        self.device = checked_device(device)
        self.data = data if data is not None else load_data(preset.data)
        self.space = space_for(preset)
        if preset.train.threads:
            torch.set_num_threads(preset.train.threads)  # for the process: the controller trains with it too
        self.latency = latency_source(preset, self.space)
        train = {k: v for k, v in asdict(preset.train).items() if k != "threads"}
        self.settings = {"evaluator": "scratch", "train": train, **shared_settings(preset, self.latency)}

    def evaluate(self, arch: Arch) -> EvalResult:
        """Train, prune, fine-tune, evaluate and measure one child."""
        seed = child_seed(self.preset.seed, arch)
        with seeded(seed):
            return self._evaluate(arch, seed)

    def _evaluate(self, arch: Arch, seed: int) -> EvalResult:
        cfg = self.preset
        model = build_model(self.space, arch)
        params_unpruned = count_params(model)
        try:
            train_s, prune_s, finetune_s = train_prune_finetune(
                model, self.data.train, cfg.train, seed=seed, device=self.device
            )
        except TrainingDiverged as err:
            return EvalResult(str(arch), "diverged", 0.0, 0.0, 0, 0, params_unpruned, reason=str(err))
        return measured_result(
            model, arch, self.data.val, eval_batch_size=cfg.train.eval_batch_size, device=self.device,
            latency=self.latency, input_shape=self.space.input_shape, params_unpruned=params_unpruned,
            train_s=train_s, prune_s=prune_s, finetune_s=finetune_s,
        )  # fmt: skip
