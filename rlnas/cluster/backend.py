"""Connect to Ray (or start a local instance), put the data and supernet in its object store once, and start the
run's workers; the driver's environments evaluate through them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rlnas.cluster import import_ray
from rlnas.cluster.pool import RemoteEvaluator, WorkerPool
from rlnas.cluster.worker import ChildWorker
from rlnas.config import EnvPreset
from rlnas.errors import ConfigError
from rlnas.run_settings import RunSettings
from rlnas.space import SearchSpace
from rlnas.training.data import load_data
from rlnas.training.supernet import load_supernet

BACKENDS = ("local", "ray")


def check_backend(backend: str, workers: int, gpus_per_child: float) -> None:
    """A one-line error for a backend or worker setting that cannot work (before the run folder exists)."""
    if backend not in BACKENDS:
        raise ConfigError(f"--backend {backend!r} is not a backend: use one of {', '.join(BACKENDS)}")
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    if gpus_per_child < 0:
        raise ConfigError(f"--gpus-per-child must be 0 or more, got {gpus_per_child}")
    if backend == "local" and (workers != 1 or gpus_per_child):
        raise ConfigError("--workers and --gpus-per-child are for --backend ray (locally, use --n-envs)")
    if backend == "ray":
        import_ray()


@contextmanager
def ray_evaluator(
    preset: EnvPreset, settings: RunSettings, space: SearchSpace, supernet: Path | None
) -> Iterator[RemoteEvaluator]:
    """An evaluator backed by ``settings.workers`` Ray actors, for the block; the actors stop after it.

    Connects to ``settings.ray_address`` (``auto``: the cluster this machine joined; ``ray://HOST:10001``: a
    remote one), or starts a local Ray instance when there is none; a Ray this call started is shut down after.
    Each actor takes one CPU and ``settings.gpus_per_child`` GPUs (children then train on ``cuda``).
    """
    ray = import_ray()
    started = not ray.is_initialized()
    if started:
        options = {"include_dashboard": False} if settings.ray_address is None else {}
        try:
            ray.init(address=settings.ray_address, log_to_driver=False, **options)
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise ConfigError(
                f"cannot reach a Ray cluster at {settings.ray_address} ({' '.join(str(err).split())[:200]}): start "
                "one with `ray start --head`, or fix --ray-address (docs/cluster.md)"
            ) from None
    try:
        data = ray.put(load_data(preset.data)) if preset.evaluator != "tabular" else None
        net = ray.put(load_supernet(supernet, space, "cpu")[0]) if supernet is not None else None
        gpus = settings.gpus_per_child
        device = "cuda" if gpus > 0 else settings.device
        threads = preset.train.threads or 1
        check_room(ray.cluster_resources(), settings.workers, threads, gpus)
        actor = ray.remote(ChildWorker).options(num_cpus=threads, num_gpus=gpus)
        pool = WorkerPool(lambda: actor.remote(preset, device, data, net, threads), settings.workers)
        try:
            yield RemoteEvaluator(pool, space)
        finally:
            pool.close()
    finally:
        if started:
            ray.shutdown()


def check_room(resources: dict[str, float], workers: int, cpus: int, gpus: float) -> None:
    """A one-line error when the cluster cannot hold ``workers`` actors of ``cpus`` CPUs and ``gpus`` GPUs now
    (Ray would otherwise wait for them forever)."""
    for name, each in (("CPU", cpus), ("GPU", gpus)):
        have = resources.get(name, 0.0)
        if each and workers * each > have:
            raise ConfigError(
                f"--workers {workers} need {workers * each:g} {name}s but the Ray cluster has {have:g}: ask for fewer "
                "workers, or add nodes (`ray status` shows what it has)"
            )
