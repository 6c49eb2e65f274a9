"""Where a child's latency comes from: measured end to end, predicted from a lookup table, or scaled FLOPs.

:func:`latency_source` resolves the preset's ``latency.source`` (``auto`` becomes ``table`` when a table for
this space and device exists, else ``measured``); the result is called with the pruned child and its architecture.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Protocol

from torch import nn

from rlnas.config import ConfigError, EnvPreset, LatencyConfig
from rlnas.latency.flops import count_flops
from rlnas.latency.measure import measure_latency
from rlnas.latency.table import LatencyTable
from rlnas.pruning import build_model
from rlnas.seeding import seeded
from rlnas.space import Arch, SearchSpace


class LatencySource(Protocol):
    """Milliseconds of one forward pass of a (pruned) child on the preset's target device."""

    name: str

    def __call__(self, model: nn.Module, arch: Arch) -> float:
        """The latency of ``model``, the child built for ``arch``."""
        ...


def default_table_path(preset_name: str, cfg: LatencyConfig) -> Path:
    """Where ``rlnas latency build`` writes a preset's table by default (and where ``auto`` looks for it)."""
    return Path("runs") / "latency" / f"{preset_name}__{cfg.device}__t{cfg.threads}__b{cfg.batch_size}.json"


@dataclasses.dataclass(frozen=True)
class MeasuredLatency:
    """Time every child end to end (``warmup`` runs, then the ``statistic`` of ``repeats``)."""

    input_shape: tuple[int, ...]
    cfg: LatencyConfig
    name: str = "measured"

    def __call__(self, model: nn.Module, arch: Arch) -> float:
        return measure_latency(model, self.input_shape, self.cfg)


@dataclasses.dataclass(frozen=True)
class TableLatency:
    """Predict from a lookup table: the sum of the child's layer entries plus the table's fitted overhead."""

    table: LatencyTable
    path: Path
    name: str = "table"

    def __call__(self, model: nn.Module, arch: Arch) -> float:
        return float(self.table.predict(arch))


@dataclasses.dataclass(frozen=True)
class FlopsLatency:
    """FLOPs times ``ms_per_flop``, measured once on the space's reference child (full width, first operator)."""

    input_shape: tuple[int, ...]
    ms_per_flop: float
    name: str = "flops"

    def __call__(self, model: nn.Module, arch: Arch) -> float:
        return count_flops(model, self.input_shape) * self.ms_per_flop


def latency_source(preset: EnvPreset, space: SearchSpace) -> LatencySource:
    """The latency source ``preset.latency`` asks for, resolved for ``space``."""
    cfg = preset.latency
    path = Path(cfg.table).expanduser() if cfg.table else default_table_path(preset.name, cfg)
    if cfg.source == "table" or (cfg.source == "auto" and path.is_file()):
        if not path.is_file():
            raise ConfigError(
                f"latency.source is table but there is no table at {path}: build it with "
                f"`rlnas latency build --env {preset.name} --out {path}`, or set latency.source: measured"
            )
        try:
            return TableLatency(LatencyTable.load(path, space, cfg), path)
        except ConfigError:
            if cfg.source == "table":
                raise
            return MeasuredLatency(space.input_shape, cfg)  # auto: a table for another space or device is not ours
    if cfg.source == "flops":
        with seeded(0):
            reference = build_model(space, space.uniform(space.operators[0], 1.0))
        ms = measure_latency(reference, space.input_shape, cfg)
        return FlopsLatency(space.input_shape, ms / count_flops(reference, space.input_shape))
    return MeasuredLatency(space.input_shape, cfg)
