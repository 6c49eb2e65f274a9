"""Careless and hostile inputs: each is accepted as a user would expect or refused with one line that names it."""

from __future__ import annotations

import os
import sqlite3

import numpy as np
import pytest
import torch
import yaml
from conftest import FakeEvaluator

from rlnas.cli import main
from rlnas.config import MAX_WIDTH, ConfigError, load_agent_preset, load_env_preset, to_dict
from rlnas.envs.child_net import ChildNetEnv
from rlnas.envs.evaluators import space_for
from rlnas.search import read_run_config, resume_search, run_search
from rlnas.store import EvaluationStore, StoreError


def one_line_error(capsys, argv: list[str], code: int = 2) -> str:
    """Run the CLI in this process; it must exit with ``code`` and one line on stderr (no traceback)."""
    assert main(argv) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


# ------------------------------------------------------------------------------------------------- presets


@pytest.mark.parametrize(("text", "value"), [("1e-3", 1e-3), ("1e6", 1e6), ("'0.5'", 0.5), ("3", 3.0)])
def test_numeric_strings_are_floats(text, value):
    """YAML 1.1 reads 1e-3 (no dot) as a string; a float key takes it as the number it spells."""
    assert load_env_preset("digits", [f"train.lr={text}"]).train.lr == value


def test_agent_presets_take_numeric_strings_too():
    assert load_agent_preset({"name": "x"}, ["learning_rate=3e-4"]).learning_rate == 3e-4


def test_a_preset_file_may_write_lr_as_1e_3(tmp_path):
    data = to_dict(load_env_preset("digits"))
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(data).replace("lr: 0.01", "lr: 1e-3"))
    assert "lr: 1e-3" in path.read_text()
    assert load_env_preset(path).train.lr == 1e-3


@pytest.mark.parametrize(
    ("override", "message"),
    [("train.lr=abc", "train.lr: expected float, found 'abc'"),
     ("train.lr=1e999", "train.lr: '1e999' is not allowed; expected a finite number"),
     ("train.lr=.nan", "train.lr: nan is not allowed; expected a finite number"),
     ("train.threads=-1", "train.threads: -1 is not allowed; expected a positive number of threads or null"),
     ("space.stages.0.width=10000000", f"space.stages[0].width: 10000000 is not allowed; expected a positive "
                                       f"number of channels, at most {MAX_WIDTH}"),
     ("space.stem_width=5000", "space.stem_width: 5000 is not allowed"),
     ("space.stages.1.layers=1000", "space.stages[1].layers: 1000 is not allowed"),
     ("data.image_size=100000", "data.image_size: 100000 is not allowed"),
     ("train.lr=[1", "override 'train.lr=[1': the value is not valid YAML: expected ',' or ']', but got "
                     "'<stream end>' at line 1, column 3"),
     ("train.lr=" + "[" * 5000, "the value is not valid YAML: nested too deeply"),
     ("train.lr=" + "x" * 10_000, "train.lr: expected float, found 'xxxxxxxxxx")],
)  # fmt: skip
def test_bad_values_are_refused_at_load_with_one_line(override, message):
    with pytest.raises(ConfigError) as info:
        load_env_preset("digits", [override])
    assert message in str(info.value) and "\n" not in str(info.value) and len(str(info.value)) < 400


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_latency_on_cuda_without_cuda_is_refused_unless_a_table_answers():
    with pytest.raises(ConfigError, match=r"latency.device: 'cuda' is not allowed; expected cpu on this machine"):
        load_env_preset("digits", ["latency.device=cuda"])
    assert load_env_preset("digits", ["latency.device=cuda", "latency.source=table"]).latency.device == "cuda"


def test_a_preset_file_that_is_not_yaml_is_named_with_its_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("data:\n  name: digits\nspace: [1, 2\n")
    with pytest.raises(ConfigError) as info:
        load_env_preset(path)
    assert str(info.value).startswith(f"{path}: not valid YAML: ") and "line 4, column 1" in str(info.value)
    assert "\n" not in str(info.value)
    path.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(ConfigError, match=f"{path}: not a YAML text file"):
        load_env_preset(path)


# -------------------------------------------------------------------------------------------------- actions


def test_fractional_actions_are_refused_and_whole_floats_accepted(digits_preset, fake_evaluator):
    env = ChildNetEnv(digits_preset, evaluator=fake_evaluator)
    try:
        for action in ([1.9] * 8, np.full(8, 0.5), [np.nan] * 8, [True] * 8, "0" * 8):
            with pytest.raises(ValueError, match="is not a vector of whole-number choice indices"):
                env.step(action)
        assert fake_evaluator.calls == 0
        _, _, _, _, info = env.step(np.full(8, 2.0))
        assert info["arch"] == str(env.space.decode([2] * 8))
    finally:
        env.close()


# ------------------------------------------------------------------------------------------------- run folders


@pytest.mark.parametrize("name", ["../../escaped", "/tmp/absolute-run", "a/b", "..", ".", "x" * 201, "é" * 101])
def test_run_names_must_stay_inside_the_runs_folder(tmp_path, digits_preset, fake_evaluator, name):
    runs = tmp_path / "deep" / "runs"
    with pytest.raises(ValueError, match="--run-name"):
        run_search(digits_preset, "random", evaluations=1, run_name=name, runs_dir=runs, evaluator=fake_evaluator,
                   progress_bar=False)  # fmt: skip
    assert not (tmp_path / "escaped").exists() and not os.path.exists("/tmp/absolute-run")
    assert not runs.exists() and fake_evaluator.calls == 0


class FailingEvaluator(FakeEvaluator):
    """Fails on its ``fail_at``-th child, like a bug in a user's operator or an out-of-memory error."""

    def __init__(self, space, fail_at: int) -> None:
        super().__init__(space)
        self.fail_at = fail_at

    def evaluate(self, arch):
        if self.calls + 1 == self.fail_at:
            raise RuntimeError("out of memory")
        return super().evaluate(arch)


def test_a_start_that_fails_before_its_first_child_leaves_no_folder(tmp_path, digits_preset):
    space = space_for(digits_preset)
    with pytest.raises(RuntimeError, match="out of memory"):
        run_search(digits_preset, "random", evaluations=3, run_name="again", runs_dir=tmp_path,
                   evaluator=FailingEvaluator(space, fail_at=1), progress_bar=False)  # fmt: skip
    assert not (tmp_path / "again").exists()
    result = run_search(digits_preset, "random", evaluations=3, run_name="again", runs_dir=tmp_path,
                        evaluator=FakeEvaluator(space), progress_bar=False)  # fmt: skip
    assert result.evaluations == 3


def test_a_failure_after_a_child_was_stored_keeps_the_run(tmp_path, digits_preset):
    space = space_for(digits_preset)
    with pytest.raises(RuntimeError, match="out of memory"):
        run_search(digits_preset, "random", evaluations=3, run_name="kept", runs_dir=tmp_path,
                   evaluator=FailingEvaluator(space, fail_at=2), progress_bar=False)  # fmt: skip
    assert len(EvaluationStore(tmp_path / "kept" / "evaluations.sqlite").records()) == 1
    assert resume_search(tmp_path / "kept", evaluator=FakeEvaluator(space), progress_bar=False).evaluations == 3


def test_a_broken_run_config_is_named_with_its_line(tmp_path):
    (tmp_path / "config.yaml").write_text("env: {name: x\nsearch: {}\n")
    with pytest.raises(ConfigError) as info:
        read_run_config(tmp_path)
    assert str(info.value).startswith(f"{tmp_path / 'config.yaml'}: not valid YAML: ") and "\n" not in str(info.value)
    (tmp_path / "config.yaml").write_text("env: {}\n")
    with pytest.raises(ConfigError, match="is not a run configuration written by `rlnas search`"):
        read_run_config(tmp_path)


class FullDisk(EvaluationStore):
    """A store on a disk that fills after ``room`` more database pages (SQLite's own max_page_count limit)."""

    room = 2

    def __init__(self, path) -> None:
        super().__init__(path)
        pages = self._db.execute("PRAGMA page_count").fetchone()[0]
        self._db.execute(f"PRAGMA max_page_count = {pages + self.room}")


def test_a_full_disk_says_the_store_is_intact_and_how_to_resume(tmp_path, digits_preset, monkeypatch, capsys):
    import rlnas.envs.child_net

    space = space_for(digits_preset)
    monkeypatch.setattr(rlnas.envs.child_net, "EvaluationStore", FullDisk)
    with pytest.raises(StoreError) as info:
        run_search(digits_preset, "random", evaluations=30, run_name="full", runs_dir=tmp_path,
                   evaluator=FakeEvaluator(space), progress_bar=False)  # fmt: skip
    run_dir = tmp_path / "full"
    message = str(info.value)
    assert "the disk is full (database or disk is full)" in message and "\n" not in message
    assert f"{run_dir / 'evaluations.sqlite'} is intact" in message
    assert f"rlnas search --resume {run_dir}" in message
    store = EvaluationStore(run_dir / "evaluations.sqlite")
    kept = store.records()
    assert 0 < len(kept) < 30 and store._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store.close()

    monkeypatch.undo()
    result = resume_search(run_dir, evaluator=FakeEvaluator(space), progress_bar=False)
    assert result.evaluations == 30
    assert EvaluationStore(run_dir / "evaluations.sqlite").records()[: len(kept)] == kept


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only folders")
def test_a_read_only_run_folder_is_named(tmp_path, synthetic_table_preset, capsys):
    result = run_search(synthetic_table_preset, "random", evaluations=2, runs_dir=tmp_path, progress_bar=False)
    os.chmod(result.run_dir, 0o555)
    try:
        err = one_line_error(capsys, ["report", "--run", str(result.run_dir)], code=1)
    finally:
        os.chmod(result.run_dir, 0o755)
    assert "is in a read-only folder" in err and "chmod -R u+w" in err


def test_sqlites_read_only_error_is_named(tmp_path, monkeypatch):
    """SQLite's error on a read-only folder (which root, running the suite here, cannot make: it is injected)."""
    import rlnas.store

    connect = sqlite3.connect

    def read_only(path, **kwargs):
        db = connect(":memory:", **kwargs)
        db.execute("PRAGMA query_only = ON")  # every write now fails as in a read-only folder
        return db

    monkeypatch.setattr(rlnas.store.sqlite3, "connect", read_only)
    with pytest.raises(StoreError, match=r"is in a read-only folder \(attempt to write a readonly database\)"):
        EvaluationStore(tmp_path / "evaluations.sqlite")


# ---------------------------------------------------------------------------------------------- resume budget


@pytest.mark.parametrize("strategy", ["random", "ppo"])
def test_resume_with_more_evaluations_extends_the_budget(tmp_path, synthetic_table_preset, strategy):
    first = run_search(synthetic_table_preset, strategy, evaluations=6, runs_dir=tmp_path, run_name="r",
                       progress_bar=False)  # fmt: skip
    before = EvaluationStore(first.run_dir / "evaluations.sqlite").records()
    assert len(before) == 6
    extended = resume_search(first.run_dir, evaluations=10, progress_bar=False)
    assert extended.evaluations == 10
    after = EvaluationStore(first.run_dir / "evaluations.sqlite").records()
    assert after[:6] == before and len({r["arch"] for r in after}) == 10
    settings = read_run_config(first.run_dir)["search"]
    assert settings["evaluations"] == 10 and settings["max_steps"] == 100
    assert resume_search(first.run_dir, progress_bar=False).evaluations == 10  # finished at its new budget


def test_resume_cannot_lower_the_budget_or_change_other_settings(tmp_path, synthetic_table_preset, capsys):
    run = run_search(synthetic_table_preset, "random", evaluations=4, runs_dir=tmp_path, progress_bar=False).run_dir
    err = one_line_error(capsys, ["search", "--resume", str(run), "--evaluations", "3"])
    assert "would lower the run's budget of 4" in err
    err = one_line_error(capsys, ["search", "--resume", str(run), "--seed", "3", "--set", "train.steps=1"])
    assert "--set, --seed cannot change them" in err
    err = one_line_error(capsys, ["search", "--resume", str(run), "--max-steps", "5"])
    assert "--max-steps 5 with --resume must be at least the run's 40" in err


# ------------------------------------------------------------------------------------------------------ CLI


def test_cli_errors_are_one_line(tmp_path, capsys):
    search = ["search", "--env", "digits", "--runs-dir", str(tmp_path), "--no-progress"]
    assert "--run-name '../x' must be a plain folder name" in one_line_error(capsys, [*search, "--run-name", "../x"])
    assert "not valid YAML" in one_line_error(capsys, [*search, "--set", "train.lr=[1"])
    assert "train.threads: -1" in one_line_error(capsys, [*search, "--set", "train.threads=-1"])
    assert "device 'tpu' is not a torch device" in one_line_error(capsys, [*search, "--device", "tpu"])
    err = one_line_error(capsys, ["sample", "--policy", "digits__ppo", "--target-latency", "-1"])
    assert "target latency -1.0 ms is out of range" in err
    assert list(tmp_path.iterdir()) == []
