"""How well a latency table predicts: random really-pruned children measured end to end against the table's
predictions and their FLOPs (the proxy), as errors and rank correlations, and a scatter plot of both."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from rlnas.config import ConfigError, LatencyConfig
from rlnas.latency.flops import count_flops
from rlnas.latency.table import LatencyTable
from rlnas.latency.timing import Aggregate, measure_children
from rlnas.pruning import build_model, prune_child
from rlnas.space.space import SearchSpace


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b (ties in either variable accounted for), :func:`scipy.stats.kendalltau`."""
    return float(stats.kendalltau(x, y).statistic)


def spearman_rho(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (ties get their average rank), :func:`scipy.stats.spearmanr`."""
    return float(stats.spearmanr(x, y).statistic)


@dataclass
class Validation:
    """Predicted vs measured end-to-end latency of random pruned children (and their FLOPs)."""

    archs: list[str]
    predicted: np.ndarray
    measured: np.ndarray
    flops: np.ndarray
    seconds: float

    @property
    def errors_pct(self) -> np.ndarray:
        return 100.0 * (self.predicted - self.measured) / self.measured

    @property
    def mape(self) -> float:
        """Mean absolute percentage error of the prediction."""
        return float(np.mean(np.abs(self.errors_pct)))

    @property
    def max_abs_pct(self) -> float:
        return float(np.max(np.abs(self.errors_pct)))

    @property
    def kendall_tau(self) -> float:
        return kendall_tau(self.predicted, self.measured)

    @property
    def spearman_rho(self) -> float:
        return spearman_rho(self.predicted, self.measured)

    @property
    def flops_kendall_tau(self) -> float:
        return kendall_tau(self.flops, self.measured)

    @property
    def flops_spearman_rho(self) -> float:
        return spearman_rho(self.flops, self.measured)

    def summary(self) -> dict[str, float]:
        return {
            "mape_pct": self.mape,
            "max_abs_pct": self.max_abs_pct,
            "kendall_tau": self.kendall_tau,
            "spearman_rho": self.spearman_rho,
            "flops_kendall_tau": self.flops_kendall_tau,
            "flops_spearman_rho": self.flops_spearman_rho,
        }


def validate(
    table: LatencyTable,
    space: SearchSpace,
    n: int = 50,
    seed: int = 1234,
    cfg: LatencyConfig | None = None,
    *,
    rounds: int | None = None,
    aggregate: Aggregate | None = None,
    progress: bool = True,
) -> Validation:
    """Measure ``n`` random really-pruned children end to end (:func:`measure_children`: timed in ``rounds``
    interleaved rounds, aggregated; both like the table's entries unless told otherwise)
    and compare with the table's predictions; also counts their FLOPs (the proxy)."""
    if space.fingerprint != table.space.fingerprint:
        raise ConfigError(
            f"latency table was built for search space {table.space.fingerprint}, not {space.fingerprint}"
        )
    cfg = cfg or LatencyConfig(
        device=table.device,
        threads=table.threads,
        batch_size=table.batch_size,
        warmup=int(table.measurement.get("warmup", 10)),
        repeats=int(table.measurement.get("repeats", 30)),
        statistic=table.measurement.get("statistic", "median"),
    )
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    archs = [space.sample(rng) for _ in range(n)]
    aggregate = aggregate or table.measurement.get("aggregate", "min")
    rounds = rounds or int(table.measurement.get("rounds", 5))
    measured = measure_children(space, archs, cfg, rounds, aggregate, seed, progress, "validation")
    flops = np.array([count_flops(prune_child(build_model(space, a)), space.input_shape) for a in archs], float)
    predicted = table.predict_many(archs)
    return Validation([str(a) for a in archs], predicted, measured, flops, time.perf_counter() - start)


def plot_validation(result: Validation, path: str | Path, title: str | None = None) -> Path:
    """Scatter plot predicted vs measured (and FLOPs vs measured) as a PNG; needs matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise RuntimeError("plotting a latency validation needs matplotlib: pip install matplotlib") from err
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4.5))
    lo = float(min(result.measured.min(), result.predicted.min())) * 0.95
    hi = float(max(result.measured.max(), result.predicted.max())) * 1.05
    ax.plot([lo, hi], [lo, hi], color="grey", lw=1, ls="--")
    ax.scatter(result.measured, result.predicted, s=14)
    ax.set(xlabel="measured latency (ms)", ylabel="predicted latency (ms)", xlim=(lo, hi), ylim=(lo, hi))
    ax.set_title(f"table: MAPE {result.mape:.1f}%, tau {result.kendall_tau:.3f}", fontsize=10)
    ax2.scatter(result.measured, result.flops / 1e6, s=14, color="tab:orange")
    ax2.set(xlabel="measured latency (ms)", ylabel="MFLOPs (pruned child)")
    ax2.set_title(f"FLOPs proxy: tau {result.flops_kendall_tau:.3f}", fontsize=10)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
