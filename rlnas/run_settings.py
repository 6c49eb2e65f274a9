"""A search's own settings, beside its env and agent presets: the ``search`` section of a run's ``config.yaml``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from rlnas.errors import ConfigError


@dataclass(frozen=True)
class RunSettings:
    """How a search runs: its strategy, budget (``evaluations`` distinct children, at most ``max_steps`` steps),
    seed, parallel environments, device, latency target, the controller it starts from, how often TensorBoard's
    views refresh, the supernet it reuses, the rlnas version and space it was started with, and where children
    are evaluated (``backend`` ``local``, or ``ray``: ``workers`` actors with ``gpus_per_child`` GPUs each, on
    the cluster at ``ray_address``; docs/cluster.md)."""

    strategy: str
    evaluations: int
    max_steps: int
    seed: int
    space_fingerprint: str
    rlnas_version: str
    n_envs: int = 1
    device: str = "cpu"
    target_latency_ms: float | None = None
    init_policy: str | None = None
    plot_every: int = 16
    supernet: str | None = None
    backend: str = "local"
    workers: int = 1
    gpus_per_child: float = 0.0
    ray_address: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain values, for ``config.yaml``, the summary and TensorBoard's HParams."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any, source: str) -> RunSettings:
        """The settings saved in ``source`` (a run's ``config.yaml``); a clear error when they do not fit."""
        names = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING}
        if not isinstance(data, dict) or not required <= set(data) or not set(data) <= names:
            found = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise ConfigError(
                f"{source}: the search section does not hold a run's settings (found {found}; expected "
                f"{', '.join(sorted(names))}): give a run folder written by `rlnas search`"
            )
        return cls(**data)
