"""Evaluate pruning plans of an existing model: prune a copy, recalibrate BatchNorm, fine-tune, measure.

Its space is the model's :class:`~rlnas.space.GroupSpace` (a keep-ratio per Torch-Pruning group), so the
environment, cache and store work exactly as for children rlnas builds.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict

import torch
from torch import nn

from rlnas.config import EnvPreset
from rlnas.envs.evaluators import EvalResult, checked_device, child_seed, measured_result
from rlnas.latency import count_flops, count_params
from rlnas.latency.source import MeasuredLatency
from rlnas.pruning.foreign.engine import Pruner, prune_model
from rlnas.pruning.foreign.weights import trained_model, weights_digest
from rlnas.seeding import seeded
from rlnas.space.groups import GroupSpace, KeepPlan
from rlnas.training.data import DataSplits, dataset_shape, load_data
from rlnas.training.trainer import TrainingDiverged, fit, recalibrate_bn


class PruneEvaluator:
    """Prune the preset's trained model to a plan, recalibrate BatchNorm, fine-tune, evaluate and measure.

    ``model``: the trained model (default: :func:`~rlnas.pruning.foreign.weights.trained_model` of the preset).
    """

    def __init__(
        self,
        preset: EnvPreset,
        device: str = "cpu",
        data: DataSplits | None = None,
        model: nn.Module | None = None,
    ) -> None:
        if preset.model is None:
            raise ValueError(f"env preset {preset.name!r} has no model section: it names no model to prune")
        self.preset, self.cfg = preset, preset.model
        self.device = checked_device(device)
        self.data = data if data is not None else load_data(preset.data)
        self.input_shape = dataset_shape(preset.data)[0]
        if preset.train.threads:
            torch.set_num_threads(preset.train.threads)
        self.model = (model if model is not None else trained_model(preset, self.data, device=self.device)).cpu()
        self.params_unpruned = count_params(self.model)
        self.flops_unpruned = count_flops(self.model, self.input_shape)
        groups = Pruner(copy.deepcopy(self.model), self.input_shape, self.cfg.ignored_layers).groups
        identity = f"{self.cfg.name}@{weights_digest(self.model)}"
        self.space = GroupSpace(groups, self.cfg.keep_ratios, self.cfg.round_to, identity)
        self.latency = MeasuredLatency(self.input_shape, preset.latency)
        train = {k: v for k, v in asdict(preset.train).items() if k not in ("threads", "steps", "lr")}
        data_cfg = {k: v for k, v in asdict(preset.data).items() if k not in ("root", "download")}
        self.settings = {
            "evaluator": "prune", "model": asdict(self.cfg), "train": train, "data": data_cfg,
            "latency": asdict(preset.latency), "latency_source": self.latency.name, "seed": preset.seed,
        }  # fmt: skip

    def prune(self, plan: KeepPlan) -> tuple[nn.Module, dict]:
        """A pruned copy of the trained model (no fine-tuning) and its pruning plan (kept channel indices)."""
        cfg = self.cfg
        return prune_model(self.model, self.input_shape, plan.keeps, importance=cfg.importance,
                           round_to=cfg.round_to, ignored_layers=cfg.ignored_layers)  # fmt: skip

    def smallest_flops(self) -> int:
        """FLOPs of the model with every group at the smallest keep-ratio."""
        model, _ = self.prune(KeepPlan((min(self.cfg.keep_ratios),) * len(self.space.groups)))
        return count_flops(model, self.input_shape)

    def evaluate(self, plan: KeepPlan) -> EvalResult:
        """Prune, recalibrate, fine-tune (``train.finetune_steps``), evaluate and measure one plan."""
        seed = child_seed(self.preset.seed, plan)
        with seeded(seed):
            return self._evaluate(plan, seed)

    def finetuned(self, plan: KeepPlan, steps: int, progress: str | None = None) -> tuple[nn.Module, dict]:
        """The plan's pruned model after BatchNorm recalibration and ``steps`` of fine-tuning (as a search step
        does, seeded as it is, for longer), and its pruning plan. Raises
        :class:`~rlnas.training.trainer.TrainingDiverged`."""
        seed = child_seed(self.preset.seed, plan)
        with seeded(seed):
            model, kept = self.prune(plan)
            self._recalibrate(model, seed)
            self._finetune(model, steps, seed, progress)
        return model, kept

    def _recalibrate(self, model: nn.Module, seed: int) -> None:
        train = self.preset.train
        recalibrate_bn(model, self.data.train, batches=train.recalibration_batches, batch_size=train.batch_size,
                       device=self.device, seed=seed)  # fmt: skip

    def _finetune(self, model: nn.Module, steps: int, seed: int, progress: str | None = None) -> None:
        train = self.preset.train
        fit(model, self.data.train, steps=steps, batch_size=train.batch_size, lr=train.finetune_lr,
            weight_decay=train.weight_decay, optimizer=train.optimizer, device=self.device, seed=seed + 1,
            progress=progress)  # fmt: skip

    def _evaluate(self, plan: KeepPlan, seed: int) -> EvalResult:
        train = self.preset.train
        clock = time.perf_counter()
        model, _ = self.prune(plan)
        self._recalibrate(model, seed)
        prune_s, clock = time.perf_counter() - clock, time.perf_counter()
        try:
            self._finetune(model, train.finetune_steps, seed)
        except TrainingDiverged as err:
            return EvalResult(str(plan), "diverged", 0.0, 0.0, 0, 0, self.params_unpruned, reason=str(err))
        return measured_result(
            model, plan, self.data.val, eval_batch_size=train.eval_batch_size, device=self.device,
            latency=self.latency, input_shape=self.input_shape, params_unpruned=self.params_unpruned,
            prune_s=prune_s, finetune_s=time.perf_counter() - clock,
        )  # fmt: skip
