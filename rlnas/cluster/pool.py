"""Ray actors evaluating children for the driver: idle actors take the next child, lost actors are replaced.

A child whose actor dies (its node went away, it ran out of memory) is queued again on a fresh actor; a child
whose evaluation fails twice (lost twice, or the evaluator raised twice) comes back as a ``failed``
:class:`~rlnas.envs.evaluators.EvalResult` with the reasons, which the environment stores as any result. The
pool neither reads nor writes the run's store: :class:`~rlnas.envs.child_net.ChildNetEnv` claims a child before
asking for it, so no child is asked for twice and the budget holds.
"""

from __future__ import annotations

import functools
import queue
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from rlnas.cluster import import_ray
from rlnas.envs.evaluators import EvalResult
from rlnas.errors import ConfigError
from rlnas.space import Arch, SearchSpace

ATTEMPTS = 2
"""Evaluations of one child before it is stored as failed."""


@dataclass
class _Job:
    arch: Arch
    future: Future[EvalResult]
    failures: list[str] = field(default_factory=list)


class WorkerPool:
    """``workers`` actors made by ``start_actor`` (each with ``settings()`` and ``evaluate(arch)``).

    Raises :class:`~rlnas.errors.ConfigError` when a worker cannot build its evaluator, or when the workers'
    evaluator settings differ (their results would not be one cache).
    """

    def __init__(self, start_actor: Callable[[], Any], workers: int) -> None:
        self._ray = import_ray()
        self._start_actor = start_actor
        self._lock = threading.Lock()
        self._queue: deque[_Job] = deque()
        self._running: dict[Any, _Job] = {}  # actor -> the child it is evaluating
        self._idle: deque[Any] = deque(start_actor() for _ in range(workers))
        self.replaced = 0
        """How many lost actors were replaced."""
        self._closed = False
        self._settled: queue.SimpleQueue = queue.SimpleQueue()  # ended evaluations, from Ray's callback thread
        self.settings = self._started_settings()
        threading.Thread(target=self._settle_loop, name="rlnas-pool", daemon=True).start()

    def _started_settings(self) -> dict[str, Any]:
        try:
            settings = self._ray.get([actor.settings.remote() for actor in self._idle])
        except self._ray.exceptions.RayError as err:
            self.close()
            reason = " ".join(str(err).split())[-300:]
            raise ConfigError(
                f"a Ray worker could not build its evaluator ({reason}): install the same rlnas on every node "
                "(docs/cluster.md)"
            ) from None
        if any(s != settings[0] for s in settings):
            self.close()
            raise ConfigError("the Ray workers' evaluators differ (another rlnas or latency table on some node?)")
        return settings[0]

    def submit(self, arch: Arch) -> Future[EvalResult]:
        """Queue ``arch``; its result (or its ``failed`` result) arrives in the future."""
        job = _Job(arch, Future())
        with self._lock:
            self._queue.append(job)
            self._dispatch()
        return job.future

    def busy_actors(self) -> list[Any]:
        """The actors evaluating a child now."""
        with self._lock:
            return list(self._running)

    def _dispatch(self) -> None:
        """Start queued children on idle actors (the lock is held)."""
        while self._queue and self._idle:
            job, actor = self._queue.popleft(), self._idle.popleft()
            self._running[actor] = job
            ref = actor.evaluate.remote(job.arch)
            ref.future().add_done_callback(functools.partial(self._ended, actor, job))

    def _ended(self, actor: Any, job: _Job, done: Future) -> None:
        self._settled.put((actor, job, done))

    def _settle_loop(self) -> None:
        """Settle ended evaluations in this pool's own thread (Ray's callback thread must not call Ray)."""
        while (ended := self._settled.get()) is not None:
            self._settle(*ended)

    def _settle(self, actor: Any, job: _Job, done: Future) -> None:
        """A child's evaluation ended: hand over its result, or replace a lost actor and queue the child again."""
        errors = self._ray.exceptions
        failure = None
        try:
            result = done.result()
        except errors.RayTaskError as err:  # the evaluator raised; the actor is fine
            failure = f"{type(err.cause).__name__ if err.cause else 'error'}: {' '.join(str(err.cause).split())}"
        except (errors.RayError, RuntimeError) as err:  # the actor is lost (node gone, out of memory, killed)
            failure = f"worker lost ({type(err).__name__})"
            actor = self._replace(actor)
        with self._lock:
            if self._closed:
                return
            self._running.pop(actor, None)
            self._idle.append(actor)
            if failure is None:
                job.future.set_result(result)
            else:
                job.failures.append(failure)
                if len(job.failures) >= ATTEMPTS:
                    job.future.set_result(failed_result(job.arch, job.failures))
                else:
                    self._queue.appendleft(job)  # first in line, on whichever actor is free next
            self._dispatch()

    def _replace(self, lost: Any) -> Any:
        with self._lock:
            self._running.pop(lost, None)
            if self._closed:
                return lost
        self._ray.kill(lost, no_restart=True)
        self.replaced += 1
        return self._start_actor()

    def close(self) -> None:
        """Stop every actor; children still queued or running end with an error."""
        with self._lock:
            self._closed = True
            actors = [*self._idle, *self._running]
            jobs = [*self._queue, *self._running.values()]
        for job in jobs:
            if not job.future.done():
                job.future.set_exception(RuntimeError("the search stopped before this child was evaluated"))
        self._settled.put(None)
        for actor in actors:
            self._ray.kill(actor, no_restart=True)


def failed_result(arch: Arch, failures: list[str]) -> EvalResult:
    """The result stored for a child whose evaluation failed every attempt."""
    reason = f"evaluation failed {len(failures)} times: {'; '.join(failures)}"
    return EvalResult(str(arch), "failed", 0.0, 0.0, 0, 0, 0, reason=reason[:500])


class RemoteEvaluator:
    """An evaluator (``space``, ``settings``, ``evaluate``) whose children the pool's workers evaluate: an
    unchanged :class:`~rlnas.envs.child_net.ChildNetEnv` stores and caches them as it does local results."""

    def __init__(self, pool: WorkerPool, space: SearchSpace) -> None:
        self.pool = pool
        self.space = space
        self.settings = pool.settings

    def evaluate(self, arch: Arch) -> EvalResult:
        """Evaluate ``arch`` on a worker; blocks this thread until its result arrives."""
        return self.pool.submit(arch).result()
