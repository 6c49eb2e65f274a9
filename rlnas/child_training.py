"""Train a chosen child for real, from scratch or from a trained supernet's weights (Once-for-All's way).

``scratch``: build the full-width child, train ``steps``, prune it to its keep-ratios, recalibrate BatchNorm and
fine-tune ``finetune_steps`` (what the scratch evaluator does per child, on a larger budget).
``supernet``: extract the pruned child with the weights it inherits from the supernet, recalibrate BatchNorm and
train it for ``steps + finetune_steps`` (one cosine schedule at the training learning rate): as many optimizer
steps as from scratch, each on the pruned child, so never more minutes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import torch

from rlnas.config import EnvPreset
from rlnas.envs.evaluators import child_seed, space_for, train_prune_finetune
from rlnas.latency import count_params
from rlnas.pruning import build_model, prune_child
from rlnas.seeding import seeded
from rlnas.space import Arch, ChildNet
from rlnas.training.data import Split
from rlnas.training.supernet import Supernet
from rlnas.training.trainer import fit, recalibrate_bn

Init = Literal["scratch", "supernet"]
INITS: tuple[Init, ...] = ("scratch", "supernet")


@dataclass(frozen=True)
class TrainedChild:
    """The trained, pruned child, its unpruned parameter count and the seconds each phase took."""

    model: ChildNet
    params_unpruned: int
    seconds: dict[str, float]


def train_child(
    preset: EnvPreset,
    arch: Arch,
    train: Split,
    *,
    steps: int,
    finetune_steps: int,
    init: Init = "scratch",
    supernet: Supernet | None = None,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> TrainedChild:
    """Train ``arch`` on ``train`` with the preset's optimizer settings, from ``init`` (see the module docstring).

    ``supernet`` is required for ``init="supernet"``. Raises
    :class:`~rlnas.training.trainer.TrainingDiverged` when a loss becomes NaN/inf.
    """
    t, seed = preset.train, child_seed(preset.seed, arch)
    if init == "scratch":
        with seeded(seed):
            model = build_model(space_for(preset), arch)
        params_unpruned = count_params(model)
        times = train_prune_finetune(
            model, train, t, seed=seed, device=device, steps=steps, finetune_steps=finetune_steps, progress=progress
        )
        return TrainedChild(model, params_unpruned, dict(zip(("train", "prune", "finetune"), times, strict=True)))
    if supernet is None:
        raise ValueError("init='supernet' needs the run's trained supernet")
    clock = time.perf_counter()
    model = supernet.extract_unpruned(arch)
    params_unpruned = count_params(model)
    prune_child(model, arch)
    recalibrate_bn(model, train, batches=t.recalibration_batches, batch_size=t.batch_size, device=device, seed=seed)
    prune_s, clock = time.perf_counter() - clock, time.perf_counter()
    fit(
        model, train, steps=steps + finetune_steps, batch_size=t.batch_size, lr=t.lr, weight_decay=t.weight_decay,
        optimizer=t.optimizer, device=device, seed=seed, progress="fine-tune" if progress else None,
    )  # fmt: skip
    return TrainedChild(
        model, params_unpruned, {"train": 0.0, "prune": prune_s, "finetune": time.perf_counter() - clock}
    )


def describe_training(init: Init, steps: int, finetune_steps: int, per_epoch: int) -> str:
    """One line saying how a child was trained, for reports."""
    if init == "scratch":
        return (
            f"from scratch: {steps} steps ({steps / per_epoch:.1f} epochs) on the full-width child, prune, "
            f"{finetune_steps} fine-tuning steps ({finetune_steps / per_epoch:.1f} epochs)"
        )
    total = steps + finetune_steps
    return (
        f"from the supernet's weights: the pruned child extracted with inherited weights, BatchNorm recalibrated, "
        f"{total} fine-tuning steps ({total / per_epoch:.1f} epochs)"
    )
