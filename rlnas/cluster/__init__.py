"""Evaluate a search's children on a Ray cluster (``rlnas search --backend ray``).

The driver (the process running ``rlnas search``) keeps the controller and the run's store and is its only
writer; Ray actors (:mod:`rlnas.cluster.worker`) each hold the data and an evaluator and return results.
:class:`~rlnas.cluster.pool.WorkerPool` hands children to idle actors and replaces lost ones;
:class:`~rlnas.cluster.pool.RemoteEvaluator` lets an unchanged :class:`~rlnas.envs.child_net.ChildNetEnv` (store,
cache, budget) use it; :class:`~rlnas.cluster.vec_env.ThreadVecEnv` steps several such environments at once.
Ray is optional: ``pip install 'rlnas[ray]'``.
"""

from __future__ import annotations

from types import ModuleType

from rlnas.errors import ConfigError

INSTALL_HINT = "pip install 'rlnas[ray]'"


def import_ray() -> ModuleType:
    """The ``ray`` module; a one-line :class:`ConfigError` saying how to install it when it is missing."""
    try:
        import ray
    except ImportError:
        raise ConfigError(f"--backend ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray
