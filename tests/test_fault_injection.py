"""Fault injection: scratch searches SIGKILLed at random moments (training a child, updating the policy, writing a
checkpoint or the summary) and resumed, again and again, end as the uninterrupted search does: exactly the
planned evaluations, no child twice, none orphaned, the same steps and the same policy."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_resume import DETERMINISTIC_DIGITS, same_policy, steps_of

from rlnas.store import EvaluationStore

BUDGET = 10
SEARCH = [sys.executable, "-m", "rlnas.cli", "search", "--no-progress"]
SETTINGS = ["--env", "digits", "--evaluations", str(BUDGET), "--agent-set", "n_steps=4", "--agent-set", "batch_size=4",
            *(arg for setting in DETERMINISTIC_DIGITS for arg in ("--set", setting))]  # fmt: skip
KILLS = 3


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([*SEARCH, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def evaluations(store_file: Path) -> int:
    if not store_file.is_file():
        return 0
    store = EvaluationStore(store_file)
    try:
        return len(store)
    finally:
        store.close()


def kill_at_random(process: subprocess.Popen, store_file: Path, rng: np.random.Generator) -> bool:
    """SIGKILL ``process`` a random fraction of a second after the store reaches a random number of evaluations
    beyond what it holds; False if the process ended first."""
    held = evaluations(store_file)
    target = int(rng.integers(held + 1, BUDGET + 1)) if held < BUDGET else held
    deadline = time.time() + 600
    while process.poll() is None and evaluations(store_file) < target and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(float(rng.uniform(0.0, 1.5)))
    if process.poll() is not None:
        return False
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    return True


@pytest.mark.slow
@pytest.mark.parametrize(("seed", "n_envs"), [(0, 1), (1, 1), (2, 2)])
def test_searches_killed_at_random_moments_resume_to_the_uninterrupted_search(tmp_path, seed, n_envs):
    rng = np.random.default_rng(seed)
    common = [*SETTINGS, "--n-envs", str(n_envs), "--runs-dir", str(tmp_path)]
    whole = start(*common, "--run-name", "whole")  # alongside: the machine runs both
    run_dir = tmp_path / "killed"
    process, kills = start(*common, "--run-name", "killed"), 0
    while kills < KILLS and kill_at_random(process, run_dir / "evaluations.sqlite", rng):
        kills += 1
        process = start("--resume", str(run_dir))
    assert process.wait(timeout=600) == 0, process.stderr.read()
    assert kills > 0, "the search ended before it could be killed"
    assert whole.wait(timeout=600) == 0, whole.stderr.read()

    store = EvaluationStore(run_dir / "evaluations.sqlite")
    records, steps = store.records(), store.steps()
    store.close()
    assert len(records) == BUDGET == len({r["arch"] for r in records}) == len({r["key"] for r in records})
    assert sum(not s["cached"] for s in steps) == BUDGET  # each child reached as new exactly once
    if n_envs == 1:
        assert steps_of(run_dir) == steps_of(tmp_path / "whole")  # also: no child orphaned
        same_policy(run_dir, tmp_path / "whole")
    else:  # parallel environments record their steps in the order they finish: compare what was searched
        assert sorted(steps_of(run_dir)) == sorted(steps_of(tmp_path / "whole"))
