"""The run's evaluation store: one SQLite row per evaluated child, committed before its reward is used.

SQLite in write-ahead-log mode survives a killed process and lets several environments (processes)
append to one file.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS evaluations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
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
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_COLUMNS = ("arch", "status", "reward", "accuracy", "latency_ms", "flops", "params", "target")


class EvaluationStore:
    """Append-only store of evaluated children in ``path`` (created if missing)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=30.0)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def add(self, record: dict[str, Any]) -> int:
        """Commit one evaluation (must hold the indexed columns; everything is kept as JSON); return its id."""
        values = [record[c] for c in _COLUMNS]
        with self._db:
            cursor = self._db.execute(
                f"INSERT INTO evaluations ({', '.join(_COLUMNS)}, record, created) "
                f"VALUES ({', '.join('?' * len(_COLUMNS))}, ?, ?)",
                [*values, json.dumps(record), time.time()],
            )
        return int(cursor.lastrowid)

    def records(self) -> list[dict[str, Any]]:
        """All evaluations in the order they were made, each with its ``id``."""
        rows = self._db.execute("SELECT id, record FROM evaluations ORDER BY id").fetchall()
        return [{"id": row["id"], **json.loads(row["record"])} for row in rows]

    def best(self, k: int = 5) -> list[dict[str, Any]]:
        """The ``k`` highest-reward distinct architectures (each with its best evaluation, earliest on ties)."""
        rows = self._db.execute(
            "SELECT id, record FROM evaluations WHERE id IN "
            "(SELECT id FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY arch ORDER BY reward DESC, id) AS n "
            "FROM evaluations) WHERE n = 1) ORDER BY reward DESC, id LIMIT ?",
            (k,),
        )
        return [{"id": row["id"], **json.loads(row["record"])} for row in rows.fetchall()]

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0])

    def set_meta(self, key: str, value: str) -> None:
        """Remember a run-level fact (e.g. the space fingerprint)."""
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def get_meta(self, key: str) -> str | None:
        """A run-level fact, or None."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def close(self) -> None:
        """Close the connection."""
        self._db.close()
