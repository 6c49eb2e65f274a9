"""``SupernetEvaluator``: evaluate a child with weights inherited from a trained weight-sharing supernet.

A step extracts the child as an ordinary, physically pruned :class:`~rlnas.space.model.ChildNet` (the same
kind of module :class:`~rlnas.envs.evaluators.ScratchEvaluator` produces), re-estimates its BatchNorm
statistics on a few training batches, optionally fine-tunes it (``supernet.finetune_steps``), evaluates
validation accuracy and measures latency. No child is trained from scratch.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict
from pathlib import Path

import torch

from rlnas.config import EnvPreset
from rlnas.envs.evaluators import (
    EvalResult,
    checked_device,
    child_seed,
    measured_result,
    shared_settings,
    space_for,
)
from rlnas.latency import count_params
from rlnas.latency.source import latency_source
from rlnas.pruning import prune_child
from rlnas.seeding import seeded
from rlnas.space import Arch
from rlnas.training.data import DataSplits, Split, load_data
from rlnas.training.supernet import Supernet, load_supernet, save_supernet, train_supernet
from rlnas.training.trainer import TrainingDiverged, fit, recalibrate_bn

SUPERNET_FILE = "supernet.pt"


class SupernetEvaluator:
    """Extract, recalibrate, (fine-tune,) evaluate and measure children of a trained :class:`Supernet`."""

    def __init__(
        self, preset: EnvPreset, supernet: Supernet, device: str = "cpu", data: DataSplits | None = None
    ) -> None:
        self.preset = preset
        self.device = checked_device(device)
        self.space = space_for(preset)
        if supernet.space.fingerprint != self.space.fingerprint:
            raise ValueError(
                f"the supernet's space {supernet.space.fingerprint} is not this preset's {self.space.fingerprint}"
            )
        self.supernet = supernet.to(self.device).eval()
        self.supernet.resort()
        self.data = data if data is not None else load_data(preset.data)
        val, size = self.data.val, preset.supernet.val_size
        self.val = val if size is None or size >= len(val) else Split(val.x[:size], val.y[:size])
        if preset.train.threads:
            torch.set_num_threads(preset.train.threads)
        self.latency = latency_source(preset, self.space)
        self.settings = {
            "evaluator": "supernet", "supernet": asdict(preset.supernet), "weights": weights_digest(self.supernet),
            "eval_batch_size": preset.train.eval_batch_size, **shared_settings(preset, self.latency),
        }  # fmt: skip

    def evaluate(self, arch: Arch) -> EvalResult:
        """Extract the pruned child with inherited weights, recalibrate BatchNorm, evaluate and measure it."""
        seed = child_seed(self.preset.seed, arch)
        with seeded(seed):
            return self._evaluate(arch, seed)

    def _evaluate(self, arch: Arch, seed: int) -> EvalResult:
        s, cfg = self.preset.supernet, self.preset
        clock = time.perf_counter()
        model = self.supernet.extract_unpruned(arch)
        params_unpruned = count_params(model)
        prune_child(model, arch)
        recalibrate_bn(
            model, self.data.train, batches=s.recalibration_batches, batch_size=s.recalibration_batch,
            device=self.device, seed=seed,
        )  # fmt: skip
        prune_s, clock = time.perf_counter() - clock, time.perf_counter()
        try:
            fit(
                model, self.data.train, steps=s.finetune_steps, batch_size=s.batch_size, lr=s.finetune_lr,
                weight_decay=s.weight_decay, optimizer=s.optimizer, device=self.device, seed=seed,
            )  # fmt: skip
        except TrainingDiverged as err:
            return EvalResult(str(arch), "diverged", 0.0, 0.0, 0, 0, params_unpruned, reason=str(err))
        return measured_result(
            model, arch, self.val, eval_batch_size=cfg.train.eval_batch_size, device=self.device,
            latency=self.latency, input_shape=self.space.input_shape, params_unpruned=params_unpruned, prune_s=prune_s,
            finetune_s=time.perf_counter() - clock,
        )  # fmt: skip


def train_preset_supernet(
    preset: EnvPreset,
    data: DataSplits,
    *,
    out: str | Path | None = None,
    device: str = "cpu",
    log_dir: str | Path | None = None,
    progress_bar: bool = True,
) -> Supernet:
    """Train a supernet with the preset's ``supernet`` settings; save it to ``out`` when given."""
    if preset.train.threads:
        torch.set_num_threads(preset.train.threads)
    supernet = Supernet(space_for(preset))
    training = train_supernet(
        supernet, data.train, preset.supernet, seed=preset.seed, device=device, log_dir=log_dir,
        progress_bar=progress_bar,
    )  # fmt: skip
    if out is not None:
        save_supernet(supernet, out, preset.supernet, training, preset=preset.name, seed=preset.seed)
    return supernet


def weights_digest(supernet: Supernet) -> str:
    """A short digest of the supernet's weights: part of the cache key of the children it evaluates."""
    digest = hashlib.sha256()
    for name, tensor in sorted(supernet.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def supernet_for_run(
    preset: EnvPreset,
    supernet: str | Path | None,
    run_dir: Path,
    *,
    device: str = "cpu",
    progress_bar: bool = True,
) -> Path:
    """The supernet file a search evaluates with: ``supernet`` (its space checked), else the run's own
    ``run_dir/supernet.pt``, trained first when it does not exist yet."""
    if preset.evaluator != "supernet":
        raise ValueError(
            f"--supernet was given but env preset {preset.name!r} uses evaluator {preset.evaluator}: "
            "add --set evaluator=supernet, or drop --supernet"
        )
    if supernet is not None:
        load_supernet(supernet, space_for(preset), "cpu")  # refuse another space before the search starts
        return Path(supernet)
    path = run_dir / SUPERNET_FILE
    if not path.is_file():
        train_preset_supernet(
            preset, load_data(preset.data), out=path, device=device, log_dir=run_dir / "supernet_train",
            progress_bar=progress_bar,
        )  # fmt: skip
    return path
