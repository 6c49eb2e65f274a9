"""What an end-to-end forward pass adds to a child's summed layer entries, fitted on calibration children.

Timing layers one by one misses the child's own forward, per-module dispatch, ``flatten``, the interpreter's
work between layers and the cache state one layer leaves to the next. Three fits of
``predicted = intercept + scale * summed + sum over the child's layers of per_operator[op]`` are stored:

- ``intercept`` (the default): scale 1, intercept = median of measured - summed: one robust parameter.
- ``operators``: scale 1, no intercept, one overhead per operator kind, fitted by ridge least squares on the
  relative error (what MAPE and the reward's ``cost / target`` see), shrunk towards the ``intercept`` fit spread
  evenly over the layers (ridge weight :data:`OPERATOR_RIDGE`): what a layer adds inside a child depends on its
  kind.
- ``affine``: intercept and scale, least squares on the relative error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np

from rlnas.space.space import Arch, SearchSpace

Fit = Literal["operators", "intercept", "affine"]
FITS: tuple[Fit, ...] = ("intercept", "operators", "affine")
"""The stored overhead fits; the first is the default."""
OPERATOR_RIDGE = 1.0
"""Ridge weight pulling the per-operator overheads towards one shared per-layer overhead (``operators`` fit)."""


@dataclass(frozen=True)
class Overhead:
    """What an end-to-end pass adds to the summed entries: ``intercept + scale * summed + sum of
    per_operator[op]`` over the child's searchable layers."""

    intercept_ms: float = 0.0
    scale: float = 1.0
    per_operator_ms: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict | list) -> Overhead:
        if isinstance(d, list):  # tables written before per-operator fits: [intercept, scale]
            return cls(float(d[0]), float(d[1]))
        per_op = {str(k): float(v) for k, v in d.get("per_operator_ms", {}).items()}
        return cls(float(d.get("intercept_ms", 0.0)), float(d.get("scale", 1.0)), per_op)


def _operator_counts(space: SearchSpace, archs: Sequence[Arch]) -> np.ndarray:
    return np.array([[arch.ops.count(op) for op in space.operators] for arch in archs], float)


def fit_overhead(
    space: SearchSpace, archs: Sequence[Arch], summed: np.ndarray, measured: np.ndarray, fit: Fit
) -> Overhead:
    """The overhead ``fit`` of ``measured`` end-to-end latencies on the ``summed`` entries of ``archs``."""
    summed, measured = np.asarray(summed, float), np.asarray(measured, float)
    if fit not in FITS:
        raise ValueError(f"fit {fit!r}: choose one of {', '.join(FITS)}")
    intercept = float(np.median(measured - summed))
    if fit == "intercept" or len(summed) < 3 or np.ptp(summed) <= 0:
        return Overhead(intercept, 1.0)
    w = 1.0 / measured  # relative least squares: minimise sum(((prediction - m) / m)^2)
    if fit == "affine":
        (a, b), *_ = np.linalg.lstsq(np.stack([w, w * summed], axis=1), np.ones_like(measured), rcond=None)
        return Overhead(float(a), float(b))
    counts = _operator_counts(space, archs)
    shared = intercept / space.num_layers
    x = counts * w[:, None]
    residual = (measured - summed - counts.sum(axis=1) * shared) * w
    delta = np.linalg.solve(x.T @ x + OPERATOR_RIDGE * np.eye(len(space.operators)), x.T @ residual)
    return Overhead(0.0, 1.0, {op: float(shared + d) for op, d in zip(space.operators, delta, strict=True)})
