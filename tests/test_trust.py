"""Trust: controllers and checkpoints taken from others load as data (a planted payload never runs), a damaged
store is not resumed silently, and one run is extended by one process at a time."""

from __future__ import annotations

import base64
import json
import os
import pickle
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from conftest import FakeEvaluator
from stable_baselines3 import PPO

from rlnas.agents.controller import Controller, load_controller
from rlnas.agents.ppo import make_ppo
from rlnas.cli import main as cli
from rlnas.config import ConfigError, load_agent_preset
from rlnas.envs.child_net import ChildNetEnv
from rlnas.envs.evaluators import space_for
from rlnas.run_lock import LOCK_FILE, run_lock
from rlnas.sample import sample_architectures
from rlnas.search import resume_search, run_search


class Payload:
    """Unpickling this creates ``marker``: what a hostile file would do (with a shell command instead)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def plant_in_sb3_zip(zip_path: Path, marker: Path) -> None:
    """Make ``zip_path`` (written by ``PPO.save``) unpickle :class:`Payload` when ``PPO.load`` reads it."""
    with zipfile.ZipFile(zip_path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    data = json.loads(files["data"])
    data["policy_class"][":serialized:"] = base64.b64encode(pickle.dumps(Payload(marker))).decode()
    files["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(zip_path, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)


@pytest.fixture
def shared_controller(tmp_path, digits_preset, fake_evaluator) -> tuple[Path, Path]:
    """A controller folder as someone else would share it, its ``policy.zip`` carrying a payload."""
    env = ChildNetEnv(digits_preset, evaluator=fake_evaluator)
    model = make_ppo(load_agent_preset("ppo"), env)
    folder = Controller(model.policy, env.space, env.reference_ms, model=model).save(tmp_path / "shared", digits_preset)
    marker = tmp_path / "payload-ran"
    plant_in_sb3_zip(folder / "policy.zip", marker)
    return folder, marker


def test_the_planted_payload_is_live(shared_controller, tmp_path):
    folder, marker = shared_controller
    with pytest.raises(TypeError):  # SB3 fails after unpickling, when the payload has already run
        PPO.load(folder / "policy.zip", device="cpu")
    assert marker.exists(), "the crafted zip must be dangerous, or the tests below prove nothing"


def test_loading_sampling_and_starting_from_a_shared_controller_run_no_code(
    shared_controller, tmp_path, digits_preset, fake_evaluator, capsys
):
    folder, marker = shared_controller
    assert len(load_controller(folder).propose(3)) == 3
    assert len(sample_architectures(folder, top_k=2)) == 2
    assert cli(["sample", "--policy", str(folder), "--top-k", "2"]) == 0
    run_search(digits_preset, "ppo", evaluations=1, runs_dir=tmp_path, run_name="from-shared", init_policy=folder,
               evaluator=fake_evaluator, progress_bar=False)  # fmt: skip
    assert not marker.exists()


def test_an_old_zip_only_controller_is_refused_with_the_way_to_convert_it(shared_controller):
    folder, marker = shared_controller
    (folder / "policy.safetensors").unlink()
    meta = json.loads((folder / "controller.json").read_text())
    del meta["policy"]
    (folder / "controller.json").write_text(json.dumps({**meta, "format_version": 1}))
    with pytest.raises(ConfigError, match=r"unpickling.*python -m rlnas\.agents\.policy_files"):
        load_controller(folder)
    assert not marker.exists()


def test_a_pickle_in_place_of_the_weights_is_refused(shared_controller):
    folder, marker = shared_controller
    (folder / "policy.safetensors").write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(ConfigError, match=r"policy\.safetensors could not be loaded") as refused:
        load_controller(folder)
    torch.save({"weights": Payload(marker)}, folder / "policy.safetensors")
    with pytest.raises(ConfigError, match=r"policy\.safetensors could not be loaded"):
        load_controller(folder)
    assert not marker.exists() and "\n" not in str(refused.value)


@pytest.mark.parametrize(
    "policy",
    [{"class": "os.system", "net_arch": []}, {"class": "rlnas.agents.policy.BatchedMlpPolicy", "net_arch": "x"}],
)
def test_a_controller_declaring_another_class_or_shape_is_refused(shared_controller, policy):
    folder, _ = shared_controller
    meta = json.loads((folder / "controller.json").read_text())
    (folder / "controller.json").write_text(json.dumps({**meta, "policy": policy}))
    with pytest.raises(ConfigError, match="policy"):
        load_controller(folder)


# ------------------------------------------------------------------------------------------ runs and checkpoints


@pytest.fixture
def stopped_run(tmp_path, digits_preset):
    """A PPO run of 12 children stopped (by exhausting max_steps) after checkpoints, with the fake evaluator."""
    agent = load_agent_preset({"name": "fast", "n_steps": 4, "batch_size": 4, "n_epochs": 2})
    space = space_for(digits_preset)
    result = run_search(digits_preset, agent, evaluations=12, run_name="run", runs_dir=tmp_path,
                        evaluator=FakeEvaluator(space), progress_bar=False)  # fmt: skip
    (result.run_dir / "summary.json").unlink()  # as if killed: resume has to continue it
    return result.run_dir, space


def test_a_payload_in_a_checkpoint_is_refused_and_never_runs(stopped_run, tmp_path):
    run_dir, space = stopped_run
    latest = sorted((run_dir / "checkpoints").glob("step_*"))[-1]
    state = torch.load(latest / "state.pt", weights_only=True)
    torch.save({**state, "python_rng": Payload(tmp_path / "payload-ran")}, latest / "state.pt")
    with pytest.raises(ConfigError, match=f"checkpoint {latest} holds objects that are not data") as refused:
        resume_search(run_dir, evaluator=FakeEvaluator(space), progress_bar=False)
    assert not (tmp_path / "payload-ran").exists() and "\n" not in str(refused.value)


def test_a_new_search_starts_from_a_checkpoint(stopped_run, tmp_path, digits_preset):
    run_dir, space = stopped_run
    latest = sorted((run_dir / "checkpoints").glob("step_*"))[-1]
    again = run_search(digits_preset, "ppo", evaluations=1, runs_dir=tmp_path, run_name="again", init_policy=latest,
                       evaluator=FakeEvaluator(space), progress_bar=False)  # fmt: skip
    for p, q in zip(again.controller.probabilities(), load_controller(latest).probabilities(), strict=True):
        torch.testing.assert_close(torch.as_tensor(p), torch.as_tensor(q))


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        ("DELETE FROM evaluations WHERE id IN (2, 3)", "it lost 2 of the {evaluations} evaluations"),
        ("DELETE FROM steps WHERE id = 1", "it lost 1 of the {steps} steps"),
        ("UPDATE evaluations SET key = 'other' WHERE id = {last_evaluation}", "evaluation {last_evaluation} .*another"),
        ("emptied", "the store file is missing or empty"),
        ("deleted", "the store file is missing or empty"),
    ],
)
def test_a_store_that_lost_what_the_checkpoint_recorded_is_refused(stopped_run, damage, match):
    run_dir, space = stopped_run
    latest = sorted((run_dir / "checkpoints").glob("step_*"))[-1]
    recorded = torch.load(latest / "state.pt", weights_only=True)["store"]
    store_file = run_dir / "evaluations.sqlite"
    if damage == "emptied":
        store_file.write_bytes(b"")
    elif damage == "deleted":
        store_file.unlink()
    else:
        db = sqlite3.connect(store_file)
        db.execute(damage.format(**recorded))
        db.commit()
        db.close()
    with pytest.raises(ConfigError, match=match.format(**recorded)) as refused:
        resume_search(run_dir, evaluator=FakeEvaluator(space), progress_bar=False)
    message = str(refused.value)
    assert "\n" not in message and f"--init-policy {latest}" in message


def test_a_corrupted_store_fails_the_integrity_check(stopped_run):
    run_dir, space = stopped_run
    store_file = run_dir / "evaluations.sqlite"
    db = sqlite3.connect(store_file)
    page_size = db.execute("PRAGMA page_size").fetchone()[0]
    index_root = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'sqlite_autoindex_evaluations_1'")
    start = (index_root.fetchone()[0] - 1) * page_size
    db.close()
    raw = bytearray(store_file.read_bytes())
    raw[start + page_size // 2 : start + page_size] = bytes(page_size // 2)  # the keys' index loses its cells
    store_file.write_bytes(bytes(raw))
    with pytest.raises(ConfigError, match="integrity check fails"):
        resume_search(run_dir, evaluator=FakeEvaluator(space), progress_bar=False)


def test_an_intact_store_resumes(stopped_run):
    run_dir, space = stopped_run
    assert resume_search(run_dir, evaluator=FakeEvaluator(space), progress_bar=False).evaluations == 12


def test_a_finished_run_with_an_emptied_store_is_refused(tmp_path, synthetic_table_preset):
    result = run_search(synthetic_table_preset, "evolution", evaluations=12, runs_dir=tmp_path, progress_bar=False)
    (result.run_dir / "evaluations.sqlite").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"summary\.json recorded: the store file is missing or empty"):
        resume_search(result.run_dir, progress_bar=False)


def test_a_second_process_on_one_run_is_refused_and_a_dead_holder_is_taken_over(stopped_run):
    run_dir, space = stopped_run
    with run_lock(run_dir), pytest.raises(ConfigError, match=f"in use by process {os.getpid()}"):
        resume_search(run_dir, evaluator=FakeEvaluator(space), progress_bar=False)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (run_dir / LOCK_FILE).write_text(dead.stdout)  # the pid of a process that has ended: a stale lock
    assert resume_search(run_dir, evaluator=FakeEvaluator(space), progress_bar=False).evaluations == 12


def test_the_lock_refuses_another_process(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from rlnas.run_lock import run_lock\n"
         f"with run_lock({str(tmp_path)!r}):\n    print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError, match=f"in use by process {holder.pid}"), run_lock(tmp_path):
            pass
    finally:
        holder.kill()
        holder.wait()
    with run_lock(tmp_path):  # released by the kernel when its holder died
        assert (tmp_path / LOCK_FILE).read_text().strip() == str(os.getpid())
