"""The run's evaluation store, which is also its evaluation cache.

``evaluations``: one row per distinct child evaluated, keyed by :func:`rlnas.envs.cache.cache_key` (space
fingerprint, architecture, evaluator settings) and committed before its reward is used. ``steps``: one row per
environment step, pointing at the evaluation that answered it (``cached`` when an earlier step reached it; a
child stored but never reached by a step, as after a resumed search dropped the steps since its checkpoint, is
answered from the store on its first visit without being ``cached``: the search replays it). A new evaluation
and its first step are committed together.
``claims``: children being evaluated right now, so parallel environments never train the same child twice and
never exceed the run's budget, whether they run in other processes or in threads of this one (each connection
owns its claims; :mod:`rlnas.cluster` steps environments in threads).

SQLite in write-ahead-log mode survives a killed process and lets several environments (processes) share one
file. ``path=":memory:"`` gives a private in-memory store.
"""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

_SCHEMA = """
CREATE TABLE IF NOT EXISTS evaluations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    arch TEXT NOT NULL,
    status TEXT NOT NULL,
    reward REAL NOT NULL,
    accuracy REAL NOT NULL,
    latency_ms REAL NOT NULL,
    flops INTEGER NOT NULL,
    params INTEGER NOT NULL,
    target REAL NOT NULL,
    record TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS steps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    evaluation INTEGER NOT NULL REFERENCES evaluations(id),
    reward REAL NOT NULL,
    target REAL NOT NULL,
    cached INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, pid INTEGER NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_COLUMNS = ("key", "arch", "status", "reward", "accuracy", "latency_ms", "flops", "params", "target")

Claim = Literal["claimed", "evaluated", "busy", "exhausted"]

_OWNERS: dict[tuple[str, str], int] = {}
"""(store file, key) -> the open connection of this process that claimed the key. Claims are checked and taken
inside a write transaction, which serialises them across connections and threads."""
_CONNECTIONS = itertools.count(1)


class StoreError(OSError):
    """A store cannot be used where it is (a read-only folder, a full disk); the message says what to do."""


class EvaluationStore:
    """Evaluated children of one run in ``path`` (created if missing)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._id = next(_CONNECTIONS)
        self._file = f":memory:{self._id}" if str(path) == ":memory:" else str(self.path.resolve())
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # One connection is used by one thread at a time, not always the one that opened it (threaded envs).
            self._db = sqlite3.connect(str(path), timeout=60.0, isolation_level=None, check_same_thread=False)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # with WAL: safe when the process is killed, fewer fsyncs
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as err:
            if "disk is full" in str(err):
                raise
            if "readonly" in str(err) or not os.access(self.path.parent, os.W_OK):
                raise StoreError(
                    f"{path} is in a read-only folder ({err}): SQLite writes beside a store even to read it; make "
                    f"the folder writable (chmod -R u+w {self.path.parent}) or work on a copy of it"
                ) from err
            raise ValueError(
                f"{path} is not a readable evaluation store ({err}): point at a run's {self.path.name}"
            ) from err

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction that holds the database's write lock from its start (no lost updates)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            if self._db.in_transaction:  # SQLite has already rolled back after some errors, e.g. a full disk
                self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def lookup(self, key: str) -> dict[str, Any] | None:
        """The evaluation stored under ``key``, or None."""
        row = self._db.execute("SELECT id, record FROM evaluations WHERE key = ?", (key,)).fetchone()
        return None if row is None else {"id": row["id"], **json.loads(row["record"])}

    def claim(self, key: str, budget: int | None = None) -> Claim:
        """Reserve ``key`` for evaluation by this process.

        ``evaluated``: already in the store. ``busy``: another live process is evaluating it (wait, then look it
        up); so is another open connection of this process. ``exhausted``: ``budget`` evaluations are stored or
        under way. ``claimed``: evaluate it, then :meth:`add` it (which releases the claim).
        """
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM evaluations WHERE key = ?", (key,)).fetchone():
                return "evaluated"
            row = db.execute("SELECT pid FROM claims WHERE key = ?", (key,)).fetchone()
            if row is not None and row["pid"] != os.getpid() and _alive(row["pid"]):
                return "busy"
            if row is not None and _OWNERS.get((self._file, key), self._id) != self._id:
                return "busy"
            if row is None and budget is not None:
                under_way = db.execute("SELECT COUNT(*) FROM claims").fetchone()[0]
                if self._count(db) + under_way >= budget:
                    return "exhausted"
            db.execute(
                "INSERT OR REPLACE INTO claims (key, pid, created) VALUES (?, ?, ?)", (key, os.getpid(), time.time())
            )
            _OWNERS[self._file, key] = self._id
        return "claimed"

    def release_claims(self) -> None:
        """Forget every claim (at the start of a run or a resume, when no environment is evaluating)."""
        with self._transaction() as db:
            db.execute("DELETE FROM claims")
            for owned in [k for k in _OWNERS if k[0] == self._file]:
                del _OWNERS[owned]

    def add(self, record: dict[str, Any], reward: float, target: float) -> tuple[int, int]:
        """Commit one evaluation (it must hold the indexed columns; all of it is kept as JSON) with the step that
        made it; return their ids."""
        values = [record[c] for c in _COLUMNS]
        with self._transaction() as db:
            cursor = db.execute(
                f"INSERT INTO evaluations ({', '.join(_COLUMNS)}, record, created) "
                f"VALUES ({', '.join('?' * len(_COLUMNS))}, ?, ?)",
                [*values, json.dumps(record), time.time()],
            )
            db.execute("DELETE FROM claims WHERE key = ?", (record["key"],))
            _OWNERS.pop((self._file, record["key"]), None)
            evaluation = int(cursor.lastrowid)
            return evaluation, self._insert_step(db, evaluation, reward, target, cached=False)

    def add_step(self, evaluation: int, reward: float, target: float) -> tuple[int, bool]:
        """Record one step answered by the stored evaluation ``evaluation``; return the step's id and whether it
        is ``cached`` (an earlier step reached that evaluation)."""
        with self._transaction() as db:
            cached = db.execute("SELECT 1 FROM steps WHERE evaluation = ? LIMIT 1", (evaluation,)).fetchone()
            return self._insert_step(db, evaluation, reward, target, cached is not None), cached is not None

    @staticmethod
    def _insert_step(db: sqlite3.Connection, evaluation: int, reward: float, target: float, cached: bool) -> int:
        cursor = db.execute(
            "INSERT INTO steps (evaluation, reward, target, cached, created) VALUES (?, ?, ?, ?, ?)",
            (evaluation, reward, target, int(cached), time.time()),
        )
        return int(cursor.lastrowid)

    def truncate_steps(self, keep: int) -> None:
        """Forget every step after the first ``keep`` (a resumed search takes them again, from a checkpoint)."""
        with self._transaction() as db:
            db.execute("DELETE FROM steps WHERE id NOT IN (SELECT id FROM steps ORDER BY id LIMIT ?)", (keep,))

    def records(self) -> list[dict[str, Any]]:
        """All evaluations in the order they were made, each with its ``id``."""
        rows = self._db.execute("SELECT id, record FROM evaluations ORDER BY id").fetchall()
        return [{"id": row["id"], **json.loads(row["record"])} for row in rows]

    def steps(self, after: int = 0) -> list[dict[str, Any]]:
        """Every step (with an id above ``after``) in order: its ``evaluation`` id, ``arch``, ``reward``,
        ``target`` and ``cached`` flag, and its child's ``status``, ``latency_ms`` and ``flops``."""
        rows = self._db.execute(
            "SELECT s.id, s.evaluation, e.arch, s.reward, s.target, s.cached, e.status, e.latency_ms, e.flops "
            "FROM steps s JOIN evaluations e ON e.id = s.evaluation WHERE s.id > ? ORDER BY s.id",
            (after,),
        ).fetchall()
        return [{**dict(row), "cached": bool(row["cached"])} for row in rows]

    def best(self, k: int = 5) -> list[dict[str, Any]]:
        """The ``k`` highest-reward evaluations (distinct architectures; earliest on ties)."""
        rows = self._db.execute("SELECT id, record FROM evaluations ORDER BY reward DESC, id LIMIT ?", (k,))
        return [{"id": row["id"], **json.loads(row["record"])} for row in rows.fetchall()]

    def __len__(self) -> int:
        return self._count(self._db)

    def step_count(self) -> int:
        """How many environment steps were recorded."""
        return int(self._db.execute("SELECT COUNT(*) FROM steps").fetchone()[0])

    @staticmethod
    def _count(db: sqlite3.Connection) -> int:
        return int(db.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0])

    def extent(self) -> dict[str, Any]:
        """What the store holds now: step and evaluation counts, their last ids, the last evaluation's key
        (a checkpoint records it; :meth:`missing` compares the store with it on resume)."""
        steps, last_step, evaluations, last_evaluation = self._db.execute(
            "SELECT (SELECT COUNT(*) FROM steps), (SELECT MAX(id) FROM steps), "
            "(SELECT COUNT(*) FROM evaluations), (SELECT MAX(id) FROM evaluations)"
        ).fetchone()
        return {
            "steps": steps, "last_step": last_step or 0, "evaluations": evaluations,
            "last_evaluation": last_evaluation or 0, "last_key": self._key(last_evaluation),
        }  # fmt: skip

    def missing(self, extent: dict[str, Any]) -> str | None:
        """What of ``extent`` (an earlier :meth:`extent` of this store, or just some of its counts) the store no
        longer holds, or None when it holds all of it and passes SQLite's integrity check."""
        problems = [r[0] for r in self._db.execute("PRAGMA integrity_check").fetchall() if r[0] != "ok"]
        if problems:
            return f"SQLite's integrity check fails ({'; '.join(problems[:3])})"
        lost = []
        for table, count, last in (("evaluations", "evaluations", "last_evaluation"), ("steps", "steps", "last_step")):
            if count in extent:
                up_to = extent.get(last, 2**62)  # the rows it held had ids up to this one
                held = self._db.execute(f"SELECT COUNT(*) FROM {table} WHERE id <= ?", (up_to,)).fetchone()[0]
                if held < extent[count]:
                    lost.append(f"{extent[count] - held} of the {extent[count]} {table}")
        if not lost and "last_key" in extent and extent["last_key"] != self._key(extent["last_evaluation"]):
            lost.append(f"evaluation {extent['last_evaluation']} (it holds another child under that id)")
        return f"it lost {' and '.join(lost)}" if lost else None

    def _key(self, evaluation: int | None) -> str | None:
        row = self._db.execute("SELECT key FROM evaluations WHERE id = ?", (evaluation,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        """Remember a run-level fact (e.g. the space fingerprint)."""
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def get_meta(self, key: str) -> str | None:
        """A run-level fact, or None."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def close(self) -> None:
        """Close the connection; its claims in this process become stale (the next claim takes them over)."""
        for owned in [k for k, owner in list(_OWNERS.items()) if owner == self._id]:
            _OWNERS.pop(owned, None)
        self._db.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
