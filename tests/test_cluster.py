"""``--backend ray``: children evaluated by Ray actors, with the local backend's store, cache, budget and resume.

The Ray tests share one local Ray instance (2 CPUs, no dashboard) per module; without Ray installed they skip
(``pip install 'rlnas[ray]'``), and the tests of the driver-side pieces (claims across threads, the threaded
and asynchronous stepping, failed children) still run.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from conftest import FakeEvaluator, kill_when_stored

from rlnas.agents.baselines import RandomSearch, run_strategy, run_strategy_async
from rlnas.cli import main
from rlnas.cluster import backend as cluster_backend
from rlnas.cluster.pool import ATTEMPTS, WorkerPool, failed_result
from rlnas.cluster.vec_env import ThreadVecEnv
from rlnas.config import ConfigError, load_agent_preset
from rlnas.envs.child_net import ChildNetEnv
from rlnas.envs.evaluators import space_for
from rlnas.search import resume_search, run_search
from rlnas.store import EvaluationStore

COMPARED = ("key", "arch", "status", "accuracy", "flops", "params", "reward")
"""What must match between backends: latency is measured (``latency.source: flops`` still times the device)."""


@pytest.fixture(scope="module")
def ray_instance():
    ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'rlnas[ray]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def exact_preset(digits_preset):
    """Digits with the latency taken from FLOPs, so two backends store the same children."""
    return dataclasses.replace(digits_preset, latency=dataclasses.replace(digits_preset.latency, source="flops"))


def stored(run_dir) -> list[tuple]:
    store = EvaluationStore(run_dir / "evaluations.sqlite")
    try:
        return sorted(tuple(r[c] for c in COMPARED) for r in store.records())
    finally:
        store.close()


def test_claims_hold_between_connections_of_one_process(tmp_path):
    first, second = EvaluationStore(tmp_path / "s.sqlite"), EvaluationStore(tmp_path / "s.sqlite")
    assert first.claim("k", budget=1) == "claimed"
    assert second.claim("k", budget=1) == "busy"  # another thread's environment is evaluating it
    assert second.claim("other", budget=1) == "exhausted"
    first.close()  # its claim is stale now: the next claim takes it over
    assert second.claim("k", budget=1) == "claimed"
    second.close()


def test_a_failed_child_is_stored_with_its_reasons(tmp_path, digits_preset):
    class Failing(FakeEvaluator):
        def evaluate(self, arch):
            return failed_result(arch, ["worker lost (ActorDiedError)"] * ATTEMPTS)

    env = ChildNetEnv(digits_preset, evaluator=Failing(space_for(digits_preset)), store_path=tmp_path / "s.sqlite")
    _, reward, _, _, info = env.step(env.action_space.sample())
    assert (info["status"], reward) == ("failed", digits_preset.reward.failure_reward)
    assert env.store.records()[0]["reason"] == "evaluation failed 2 times: " + "; ".join(
        ["worker lost (ActorDiedError)"] * 2
    )
    env.close()


def test_asynchronous_random_search_reaches_the_sequential_children(tmp_path, digits_preset):
    space = space_for(digits_preset)

    def children(name: str, run, n_envs: int) -> list[str]:
        envs = [ChildNetEnv(digits_preset, evaluator=FakeEvaluator(space), store_path=tmp_path / name,
                            max_evaluations=10) for _ in range(n_envs)]  # fmt: skip
        steps = run(envs if n_envs > 1 else envs[0], RandomSearch(space.nvec, seed=3), 10, 100, 0, lambda info: None)
        archs = sorted(r["arch"] for r in envs[0].store.records())
        for env in envs:
            env.close()
        assert steps >= 10
        return archs

    assert children("async.sqlite", run_strategy_async, 3) == children("seq.sqlite", run_strategy, 1)


def test_threaded_vec_env_steps_like_dummy_vec_env(tmp_path, digits_preset):
    space = space_for(digits_preset)
    factory = lambda: ChildNetEnv(digits_preset, evaluator=FakeEvaluator(space), store_path=tmp_path / "s.sqlite")  # noqa: E731
    venv = ThreadVecEnv([factory] * 3)
    venv.reset()
    same = np.zeros(len(space.nvec), dtype=int)
    _, rewards, dones, infos = venv.step(np.stack([same, same, same + 1]))
    assert dones.all() and rewards[0] == rewards[1]
    assert sorted(i["cached"] for i in infos[:2]) == [False, True]  # one child evaluated once, the twin waited
    assert len(EvaluationStore(tmp_path / "s.sqlite")) == 2
    venv.close()


def test_backend_ray_without_ray_says_how_to_install_it(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    code = main(["search", "--env", "digits", "--backend", "ray", "--runs-dir", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "pip install 'rlnas[ray]'" in err
    assert not any(tmp_path.iterdir())


def test_ray_search_stores_the_local_search_children(tmp_path, exact_preset, ray_instance):
    random = load_agent_preset("random")
    local = run_search(exact_preset, random, evaluations=8, run_name="local", runs_dir=tmp_path, progress_bar=False)
    remote = run_search(exact_preset, random, evaluations=8, run_name="ray", runs_dir=tmp_path, progress_bar=False,
                        backend="ray", workers=2)  # fmt: skip
    assert remote.evaluations == local.evaluations == 8
    assert stored(remote.run_dir) == stored(local.run_dir)


class _RecordingPool(WorkerPool):
    started: list[WorkerPool] = []  # noqa: RUF012

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.started.append(self)


def test_a_worker_killed_mid_child_is_replaced_without_counting_twice(
    tmp_path, exact_preset, ray_instance, monkeypatch
):
    monkeypatch.setattr(cluster_backend, "WorkerPool", _RecordingPool)
    _RecordingPool.started.clear()
    killed = []

    def kill_a_busy_worker() -> None:
        deadline = time.time() + 120
        while time.time() < deadline and not killed:
            busy = _RecordingPool.started[0].busy_actors() if _RecordingPool.started else []
            if busy:
                ray_instance.kill(busy[0], no_restart=True)
                killed.append(busy[0])
            time.sleep(0.05)

    killer = threading.Thread(target=kill_a_busy_worker)
    killer.start()
    result = run_search(exact_preset, "random", evaluations=8, run_name="killed", runs_dir=tmp_path,
                        progress_bar=False, backend="ray", workers=2)  # fmt: skip
    killer.join()
    keys = [row[0] for row in stored(result.run_dir)]
    assert killed and _RecordingPool.started[0].replaced == 1
    assert len(keys) == len(set(keys)) == 8
    assert all(row[2] == "ok" for row in stored(result.run_dir))  # the lost child ran again, on the new worker


@pytest.mark.slow
def test_a_child_lost_twice_comes_back_failed(exact_preset, ray_instance):
    from rlnas.cluster.worker import ChildWorker

    slow = dataclasses.replace(exact_preset, train=dataclasses.replace(exact_preset.train, steps=100_000))
    actor = ray_instance.remote(ChildWorker).options(num_cpus=1)
    pool = WorkerPool(lambda: actor.remote(slow, "cpu", None, None, 1), 1)
    space = space_for(slow)
    future = pool.submit(space.decode(np.zeros(len(space.nvec), dtype=int)))
    for _ in range(ATTEMPTS):
        deadline = time.time() + 60
        while not pool.busy_actors() and time.time() < deadline:
            time.sleep(0.05)
        ray_instance.kill(pool.busy_actors()[0], no_restart=True)
        while pool.busy_actors() and time.time() < deadline:  # until the pool has seen the loss
            time.sleep(0.05)
    result = future.result(timeout=60)
    pool.close()
    assert result.status == "failed" and result.reason.count("worker lost") == ATTEMPTS
    assert pool.replaced == ATTEMPTS


@pytest.mark.slow
def test_a_killed_ray_driver_resumes_to_its_planned_evaluations(tmp_path, ray_instance):
    address = ray_instance.get_runtime_context().gcs_address
    command = [sys.executable, "-m", "rlnas.cli", "search", "--env", "digits", "--evaluations", "12",
               "--set", "train.steps=5", "--set", "train.finetune_steps=1", "--set", "latency.repeats=3",
               "--agent-set", "n_steps=2", "--agent-set", "batch_size=4", "--run-name", "killed",
               "--backend", "ray", "--workers", "2", "--ray-address", address, "--runs-dir", str(tmp_path),
               "--no-progress"]  # fmt: skip
    store_file = tmp_path / "killed" / "evaluations.sqlite"
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    kill_when_stored(process, store_file, 5)
    killed_at = len(EvaluationStore(store_file))
    assert 5 <= killed_at < 12

    result = resume_search(tmp_path / "killed", progress_bar=False)  # on this test's Ray instance
    keys = [row[0] for row in stored(result.run_dir)]
    assert result.evaluations == len(keys) == len(set(keys)) == 12


@pytest.mark.parametrize(
    ("backend", "workers", "gpus", "match"),
    [("slurm", 1, 0, "not a backend"), ("local", 2, 0, "are for --backend ray"), ("ray", 0, 0, "at least 1"),
     ("ray", 1, -1, "0 or more")],
)  # fmt: skip
def test_backend_settings_are_checked_before_the_run_starts(backend, workers, gpus, match):
    with pytest.raises(ConfigError, match=match):
        cluster_backend.check_backend(backend, workers, gpus)


def test_more_workers_than_the_cluster_holds_are_refused():
    with pytest.raises(ConfigError, match="need 4 CPUs but the Ray cluster has 2"):
        cluster_backend.check_room({"CPU": 2.0}, 4, 1, 0)
    with pytest.raises(ConfigError, match="need 2 GPUs but the Ray cluster has 0"):
        cluster_backend.check_room({"CPU": 8.0}, 2, 1, 1.0)
    cluster_backend.check_room({"CPU": 2.0, "GPU": 1.0}, 2, 1, 0.5)
