"""A per-device latency lookup table: predict a pruned child's latency by summing its layers' entries.

:meth:`LatencyTable.predict` follows a precomputed transition map ``(position, operator, keep-ratio, input
width) -> (entry, output width)`` (:mod:`rlnas.latency.layers`): dictionary look-ups, no torch module is built.
The file (JSON, :data:`TABLE_FORMAT_VERSION`) records the device (:func:`~rlnas.latency.device.device_name`),
thread count, batch size, torch version, measurement settings, the space fingerprint and declaration, the
overhead fits (:mod:`rlnas.latency.overhead`) and their calibration children, and every entry. Loading it
against another space, device, thread count or batch size raises :class:`rlnas.config.ConfigError` naming both
values. :func:`rlnas.latency.build.build_table` measures a table; docs/latency.md explains how and why.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from rlnas.config import ConfigError, LatencyConfig
from rlnas.latency.device import device_name
from rlnas.latency.layers import LayerConfig, LayerEnumeration, enumerate_layers
from rlnas.latency.overhead import Fit, Overhead
from rlnas.space.space import Arch, SearchSpace

TABLE_FORMAT_VERSION = 1


@dataclass
class LatencyTable:
    """Per-configuration latencies of one space on one device, and the predictor built on them
    (:func:`rlnas.latency.build.build_table` measures one)."""

    space: SearchSpace
    entries: dict[LayerConfig, float]
    device: str
    device_name: str
    threads: int
    batch_size: int
    torch_version: str = torch.__version__
    overhead: Overhead = field(default_factory=Overhead)
    overhead_fit: str = "none"
    fits: dict[str, Overhead] = field(default_factory=dict)
    calibration: list[dict] = field(default_factory=list)
    measurement: dict = field(default_factory=dict)
    build_s: float = 0.0
    created: str = ""
    _enum: LayerEnumeration | None = field(default=None, repr=False)
    _fast: dict | None = field(default=None, repr=False)

    def use_fit(self, fit: Fit | Literal["none"]) -> None:
        """Predict with one of the stored overhead fits (``operators``, ``intercept``, ``affine``) or ``none``
        (the bare sum)."""
        if fit == "none":
            self.overhead = Overhead()
        elif fit in self.fits:
            self.overhead = self.fits[fit]
        else:
            raise ValueError(f"fit {fit!r}: this table has {', '.join(self.fits) or 'no fits'} (or 'none')")
        self.overhead_fit = fit

    # ------------------------------------------------------------------------------------------ predicting

    @property
    def enumeration(self) -> LayerEnumeration:
        if self._enum is None:
            self._enum = enumerate_layers(self.space)
        return self._enum

    def _transitions(self) -> dict:
        if self._fast is None:
            enum = self.enumeration
            missing = [c for c in enum.configs if c not in self.entries]
            if missing:
                raise ConfigError(
                    f"latency table has no entry for {len(missing)} configuration(s) this space produces "
                    f"(e.g. {missing[0]}): it was built by another rlnas version; rebuild it with "
                    f"`rlnas latency build`"
                )
            self._fast = {
                "stem": self.entries[enum.stem],
                "layers": {k: (self.entries[c], w) for k, (c, w) in enum.transitions.items()},
                "head": {w: self.entries[c] for w, c in enum.head.items()},
            }
        return self._fast

    def layer_configs(self, arch: Arch | str) -> list[LayerConfig]:
        """The entries a child of ``arch`` is predicted from: stem, one per searchable layer, head."""
        return self.enumeration.arch_configs(arch)

    def summed(self, arch: Arch | str) -> float:
        """Sum of the child's entries in ms (stem + layers + head), without the overhead term."""
        fast = self._transitions()
        if isinstance(arch, str):
            arch = self.space.parse(arch)
        layers, width, total = fast["layers"], self.space.config.stem_width, fast["stem"]
        try:
            for i, (op, keep) in enumerate(zip(arch.ops, arch.keeps, strict=True)):
                ms, width = layers[(i, op, keep, width)]
                total += ms
        except (KeyError, ValueError):
            self.space.validate(arch)  # names the offending layer
            raise
        return total + fast["head"][width]

    def predict(self, arch: Arch | str) -> float:
        """Predicted end-to-end latency (ms) of the pruned child: the summed entries plus the overhead."""
        if isinstance(arch, str):
            arch = self.space.parse(arch)
        o = self.overhead
        per_op = sum(o.per_operator_ms.get(op, 0.0) for op in arch.ops) if o.per_operator_ms else 0.0
        return o.intercept_ms + o.scale * self.summed(arch) + per_op

    def predict_many(self, archs: Iterable[Arch | str]) -> np.ndarray:
        return np.array([self.predict(a) for a in archs])

    # ---------------------------------------------------------------------------------------------- files

    def to_json(self) -> dict:
        return {
            "format_version": TABLE_FORMAT_VERSION,
            "space_fingerprint": self.space.fingerprint,
            "space": self.space.declaration(),
            "device": self.device,
            "device_name": self.device_name,
            "threads": self.threads,
            "batch_size": self.batch_size,
            "torch_version": self.torch_version,
            "measurement": self.measurement,
            "overhead": {"fit": self.overhead_fit, **self.overhead.to_json()},
            "fits": {name: o.to_json() for name, o in self.fits.items()},
            "calibration": self.calibration,
            "build_s": self.build_s,
            "created": self.created,
            "entries": [{**c.to_json(), "ms": ms} for c, ms in self.entries.items()],
        }

    def save(self, path: str | Path) -> Path:
        """Write the table as JSON (parent folders are created)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path, space: SearchSpace, cfg: LatencyConfig | None = None) -> LatencyTable:
        """Read a table, refusing it (:class:`ConfigError`) unless it was built for ``space`` and, when ``cfg``
        is given, for ``cfg``'s device (type and model), thread count and batch size."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ConfigError(f"latency table {path}: cannot read it: {err}") from err
        fix = "rebuild it with `rlnas latency build --env PRESET --out PATH` on the target device"
        if data.get("format_version") != TABLE_FORMAT_VERSION:
            raise ConfigError(
                f"latency table {path}: format version {data.get('format_version')!r}, this rlnas reads "
                f"version {TABLE_FORMAT_VERSION}; {fix}"
            )
        if data["space_fingerprint"] != space.fingerprint:
            raise ConfigError(
                f"latency table {path} was built for search space {data['space_fingerprint']}, not for this "
                f"space {space.fingerprint}; {fix}"
            )
        if cfg is not None:
            want_type = torch.device(cfg.device).type
            checks = [
                ("device", data["device"], want_type),
                ("device model", data["device_name"], device_name(cfg.device)),
                ("threads", data["threads"], cfg.threads),
                ("batch size", data["batch_size"], cfg.batch_size),
            ]
            for what, have, want in checks:
                if have != want:
                    raise ConfigError(
                        f"latency table {path} was measured with {what} {have!r}, but latency is wanted for "
                        f"{what} {want!r}; {fix}"
                    )
        overhead = data.get("overhead", {})
        return cls(
            space=space,
            entries={LayerConfig.from_json(e): float(e["ms"]) for e in data["entries"]},
            device=data["device"],
            device_name=data["device_name"],
            threads=int(data["threads"]),
            batch_size=int(data["batch_size"]),
            torch_version=data.get("torch_version", ""),
            overhead=Overhead.from_json(overhead),
            overhead_fit=str(overhead.get("fit", "none")),
            fits={k: Overhead.from_json(f) for k, f in data.get("fits", {}).items()},
            calibration=list(data.get("calibration", [])),
            measurement=dict(data.get("measurement", {})),
            build_s=float(data.get("build_s", 0.0)),
            created=str(data.get("created", "")),
        )
