"""A run's folder: its name, the files every run has, its budget on resume, and what happens to it when a start or
a disk fails."""

from __future__ import annotations

import dataclasses
import errno
import os
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from rlnas.envs.supernet_evaluator import SUPERNET_FILE
from rlnas.run_settings import RunSettings
from rlnas.store import EvaluationStore, StoreError

STORE_FILE = "evaluations.sqlite"
CONFIG_FILE = "config.yaml"
DEFAULT_STEPS_PER_EVALUATION = 10
"""``max_steps`` is this many times the budget of distinct children unless given."""
MAX_RUN_NAME = 200
"""The longest run folder name, in UTF-8 bytes (file systems allow 255)."""


def checked_run_name(name: str) -> str:
    """``name`` if it names one folder directly inside the runs folder; else a one-line ``ValueError``."""
    separators = {"/", os.sep, os.altsep or "/", "\0"}
    if name in ("", ".", "..") or any(sep in name for sep in separators):
        raise ValueError(
            f"--run-name {name!r} must be a plain folder name inside --runs-dir (no path separators, not '.' or "
            "'..'): put the folder elsewhere with --runs-dir"
        )
    if len(name.encode()) > MAX_RUN_NAME:
        raise ValueError(f"--run-name is {len(name.encode())} bytes long; give at most {MAX_RUN_NAME}")
    return name


def remove_if_unused(run_dir: Path, created: bool) -> None:
    """After a failed start: empty ``run_dir`` (and remove it if this start ``created`` it) unless it holds an
    evaluated child or a trained supernet, so the name can be used again."""
    store = run_dir / STORE_FILE
    try:
        if (run_dir / SUPERNET_FILE).exists() or (store.is_file() and _count(store) > 0):
            return
    except (StoreError, ValueError, sqlite3.Error):  # an unreadable store is left for the user to inspect
        return
    for item in run_dir.iterdir():
        if item.is_dir():
            shutil.rmtree(item)
        else:
            item.unlink()
    if created:
        run_dir.rmdir()


def _count(store_path: Path) -> int:
    store = EvaluationStore(store_path)
    try:
        return len(store)
    finally:
        store.close()


@contextmanager
def resumable(run_dir: Path) -> Iterator[None]:
    """Turn a full disk into a one-line :class:`~rlnas.store.StoreError` that says the store is intact and how
    to continue (every evaluation is committed whole, or rolled back)."""
    try:
        yield
    except (OSError, sqlite3.OperationalError) as err:
        if not (getattr(err, "errno", None) == errno.ENOSPC or "database or disk is full" in str(err)):
            raise
        raise StoreError(
            f"the disk is full ({err}); {run_dir / STORE_FILE} is intact (every child evaluated so far is in it): "
            f"free some space, then continue with `rlnas search --resume {run_dir}`"
        ) from err


def write_config(run_dir: Path, resolved: dict) -> None:
    """Replace the run's ``config.yaml`` whole (written beside it, then renamed), so a crash cannot truncate it."""
    partial = run_dir / f".{CONFIG_FILE}.partial"
    partial.write_text(yaml.safe_dump(resolved, sort_keys=False))
    partial.replace(run_dir / CONFIG_FILE)


def extended_budget(settings: RunSettings, evaluations: int | None, max_steps: int | None) -> RunSettings:
    """The run's ``settings`` with its budget raised to ``evaluations`` distinct children and ``max_steps`` steps.

    Neither may be lowered. Without ``max_steps``, the step bound grows with the budget: it becomes the larger of
    the run's and ten times ``evaluations``.
    """
    new_evaluations = settings.evaluations if evaluations is None else evaluations
    if new_evaluations < settings.evaluations:
        raise ValueError(
            f"--evaluations {evaluations} with --resume would lower the run's budget of {settings.evaluations}: "
            "a resumed run can only raise it"
        )
    if max_steps is None:
        max_steps = max(settings.max_steps, DEFAULT_STEPS_PER_EVALUATION * new_evaluations)
    if max_steps < max(settings.max_steps, new_evaluations):
        raise ValueError(
            f"--max-steps {max_steps} with --resume must be at least the run's {settings.max_steps} and the "
            f"number of evaluations ({new_evaluations})"
        )
    return dataclasses.replace(settings, evaluations=new_evaluations, max_steps=max_steps)
