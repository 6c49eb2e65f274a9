"""One process at a time in a run folder: a search and its ``--resume`` hold ``runs/NAME/run.lock``.

The lock is an ``flock`` on the file, which also records the holder's pid (so the refusal can name it). The
kernel releases an ``flock`` when its process ends, however it ends: the lock of a killed search is stale at
once and the next ``--resume`` takes it over.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rlnas.config import ConfigError

LOCK_FILE = "run.lock"


@contextmanager
def run_lock(run_dir: str | Path) -> Iterator[None]:
    """Hold ``run_dir``'s lock for the block; raise :class:`~rlnas.config.ConfigError` if a live process has it."""
    path = Path(run_dir) / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise ConfigError(
                f"{run_dir} is in use by process {holder} (a search or --resume of this run): wait for it to end "
                "or stop it, then resume; two processes must not extend one run"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the flock
