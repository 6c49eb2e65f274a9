"""Tabular benchmarks: look children up in a table of published results instead of training them.

Table format (``table`` section of an env preset, :class:`rlnas.config.TableConfig`):

* **JSON**: an object mapping a child's *key* to its record, e.g. NAS-Bench-Macro's
  ``{"22212220": {"mean_acc": 93.13, "flops": 83.6e6, "params": 1.7e6, ...}, ...}``.
* **CSV**: one row per child, with either a ``key`` column or one column per layer (``layer_0``,
  ``layer_1``, ...) holding that layer's choice code, and one column per metric.

A child's key joins its layers' codes with ``table.separator``. A layer's code is its operator's
(``table.codes[i]`` stands for ``space.operators[i]``, default ``"0"``, ``"1"``, ...), followed by its
keep-ratio's (``table.keep_codes[j]`` for ``space.keep_ratios[j]``) when the table indexes channel widths too:
with codes ``[""]`` and keep codes ``["0", "1", "2", "3"]`` a width benchmark's key is one digit per layer.
Metrics are read from the fields the preset names (``accuracy``, ``flops``, ``params``, ``latency_ms``);
``accuracy / accuracy_scale`` is the child's accuracy.

Latency: a table without a latency column (``latency_ms: null``) under a reward that needs latency takes it
from the preset's latency source (:func:`rlnas.latency.source.latency_source`): a latency table built for the
space by ``rlnas latency build``, the child built, pruned and measured, or its FLOPs scaled. So a budget can be
set in milliseconds on a benchmark that published accuracies only.

Equivalent keys: where the table stores *identical* records (every field equal) under several keys
(NAS-Bench-Macro does so for architectures that differ only in where an identity layer sits after the first
layer of a stage, because they are one network), those keys are one record. Every key reports the smallest
key of its group as ``record_key``, so the store and any cache see which children were the same network.
``table.merge_identical: false`` turns this off for tables too coarse to tell different networks apart.
The environment evaluates each child as the representative of the networks it builds
(:meth:`rlnas.space.SearchSpace.canonical_action`), so a table is read at representatives' keys only.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import torch

from rlnas.config import EnvPreset, TableConfig
from rlnas.envs.evaluators import EvalResult, space_for
from rlnas.latency.source import LatencySource, TableLatency, latency_source
from rlnas.latency.timing import pruned_children
from rlnas.space import Arch, SearchSpace
from rlnas.training.data import DataError


class BenchmarkTable:
    """Records by key, with equivalent keys (identical records) mapped to one canonical key."""

    def __init__(
        self, records: dict[str, dict[str, Any]], source: str = "<memory>", merge_identical: bool = True
    ) -> None:
        if not records:
            raise DataError(f"benchmark table {source} holds no records")
        self.source = source
        self.records = records
        canonical_of_record: dict[str, str] = {}
        self.canonical: dict[str, str] = {}
        for key in sorted(records):
            fingerprint = json.dumps(records[key], sort_keys=True) if merge_identical else key
            self.canonical[key] = canonical_of_record.setdefault(fingerprint, key)

    @classmethod
    def load(
        cls, path: str | Path, separator: str = "", source_hint: str = "", merge_identical: bool = True
    ) -> BenchmarkTable:
        """Read a JSON or CSV table (see the module docstring for the format)."""
        path = Path(os.path.expandvars(str(path))).expanduser()
        if not path.is_file():
            hint = f" Get it from {source_hint}." if source_hint else ""
            raise DataError(
                f"benchmark table {path} not found (looked relative to {Path.cwd()}).{hint} "
                "Point the preset at it with table.path, or on the command line: --set table.path=FILE"
            )
        try:
            if path.suffix.lower() == ".csv":
                return cls(_read_csv(path, separator), str(path), merge_identical)
            data = json.loads(path.read_text())
        except (OSError, ValueError, csv.Error) as err:
            raise DataError(f"benchmark table {path} could not be read: {err}") from err
        if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
            raise DataError(f"benchmark table {path}: expected a JSON object mapping keys to records (objects)")
        return cls(data, str(path), merge_identical)

    def __len__(self) -> int:
        return len(self.records)

    def lookup(self, key: str) -> tuple[str, dict[str, Any]]:
        """``(canonical key, record)`` for ``key``; ``KeyError`` naming the table if it is absent."""
        if key not in self.canonical:
            raise KeyError(f"key {key!r} is not in benchmark table {self.source} ({len(self)} records)")
        canonical = self.canonical[key]
        return canonical, self.records[canonical]


class TabularEvaluator:
    """An :class:`~rlnas.envs.evaluators.Evaluator` that reads a child's metrics from a benchmark table.

    Evaluations count exactly like trained ones: they go through the same environment, reward and store.
    """

    def __init__(self, preset: EnvPreset, table: BenchmarkTable | None = None) -> None:
        if preset.table is None:
            raise ValueError(f"env preset {preset.name!r} has no table section; the tabular evaluator needs one")
        self.preset = preset
        self.config: TableConfig = preset.table
        self.space: SearchSpace = space_for(preset)
        self.table = (
            table
            if table is not None
            else BenchmarkTable.load(
                self.config.path, self.config.separator, self.config.source, self.config.merge_identical
            )
        )
        self.codes = self.config.codes or tuple(str(i) for i in range(len(self.space.operators)))
        self.keep_codes = self.config.keep_codes or ("",)  # without keep codes the space has one keep-ratio
        self.settings = {"evaluator": "tabular", "table": dataclasses.asdict(self.config)}
        self.latency: LatencySource | None = None
        if self.config.latency_ms is None and preset.reward.latency_target is not None:
            self.latency = latency_source(preset, self.space)
            self.settings |= {"latency": dataclasses.asdict(preset.latency), "latency_source": self.latency.name}
        self._check_fits()
        # Lookups use no torch; the controller's tiny network is fastest on one thread (several threads made a
        # PPO search on a table 4x slower on a shared 2-core machine).
        torch.set_num_threads(preset.train.threads or 1)

    def key_of(self, arch: Arch) -> str:
        """The table key of ``arch``: its layers' codes (operator code, then keep-ratio code) joined by the
        separator."""
        self.space.validate(arch)
        ops, keeps = self.space.operators, self.space.keep_ratios
        return self.config.separator.join(
            self.codes[ops.index(op)] + self.keep_codes[keeps.index(keep)]
            for op, keep in zip(arch.ops, arch.keeps, strict=True)
        )

    def evaluate(self, arch: Arch) -> EvalResult:
        """The table's metrics for ``arch``."""
        record_key, record = self.table.lookup(self.key_of(arch))
        cfg = self.config
        latency_ms, source = self._latency(arch, record, record_key)
        return EvalResult(
            arch=str(arch),
            status="ok",
            accuracy=float(self._metric(record, cfg.accuracy, record_key)) / cfg.accuracy_scale,
            latency_ms=latency_ms,
            flops=int(float(self._metric(record, cfg.flops, record_key))) if cfg.flops else 0,
            params=int(float(self._metric(record, cfg.params, record_key))) if cfg.params else 0,
            params_unpruned=int(float(self._metric(record, cfg.params, record_key))) if cfg.params else 0,
            record_key=record_key,
            latency_source=source,
        )

    def _latency(self, arch: Arch, record: dict[str, Any], key: str) -> tuple[float, str]:
        """``(latency in ms, where it came from)``: the table's column, else the latency source, else none."""
        if self.config.latency_ms:
            return float(self._metric(record, self.config.latency_ms, key)), "benchmark"
        if self.latency is None:
            return 0.0, ""
        if isinstance(self.latency, TableLatency):  # a look-up: no network needs to be built
            return float(self.latency.table.predict(arch)), self.latency.name
        model = pruned_children(self.space, [arch], seed=0)[0]
        return float(self.latency(model, arch)), self.latency.name

    def _metric(self, record: dict[str, Any], field: str, key: str) -> Any:
        if field not in record:
            raise DataError(
                f"benchmark table {self.table.source}: record {key!r} has no field {field!r} "
                f"(fields: {', '.join(record)}); fix the metric names in the preset's table section"
            )
        return record[field]

    def _check_fits(self) -> None:
        example = next(iter(self.table.records))
        expected = self.key_of(self.space.uniform(self.space.operators[0], self.space.keep_ratios[0]))
        if len(example) != len(expected):
            raise DataError(
                f"benchmark table {self.table.source}: keys look like {example!r} but this space "
                f"({self.space.num_layers} layers) makes keys like {expected!r}; check space.stages and table.codes"
            )


def _read_csv(path: Path, separator: str) -> dict[str, dict[str, Any]]:
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return {}
    layer_columns = sorted((c for c in rows[0] if c.startswith("layer_")), key=lambda c: int(c[len("layer_") :]))
    if "key" not in rows[0] and not layer_columns:
        raise DataError(f"benchmark table {path}: expected a 'key' column or layer_0, layer_1, ... columns")
    records = {}
    for row in rows:
        key = row.pop("key") if "key" in row else separator.join(row.pop(c) for c in layer_columns)
        records[key] = {name: _number(value) for name, value in row.items()}
    return records


def _number(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text
