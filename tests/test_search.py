"""A real (tiny) search on digits: the run folder, the store, TensorBoard tags and the saved policy."""

from __future__ import annotations

import json

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rlnas.agents.controller import load_controller
from rlnas.config import load_agent_preset
from rlnas.search import run_search
from rlnas.store import EvaluationStore

CHILD_TAGS = ["child/accuracy", "child/latency_ms", "child/flops", "child/params", "child/reward"]


@pytest.fixture
def fast_agent():
    """PPO updating every 4 children, so a short search trains the policy at least once."""
    return load_agent_preset({"name": "fast", "n_steps": 4, "batch_size": 4, "n_epochs": 2})


def test_tiny_search_on_digits_writes_the_run(tmp_path, digits_preset, fast_agent):
    result = run_search(
        digits_preset, fast_agent, evaluations=8, run_name="tiny", runs_dir=tmp_path, progress_bar=False
    )
    run = tmp_path / "tiny"
    assert result.run_dir == run and result.evaluations == 8
    for name in ("config.yaml", "evaluations.sqlite", "summary.json", "summary.md", "policy/policy.zip"):
        assert (run / name).is_file(), name

    records = EvaluationStore(run / "evaluations.sqlite").records()
    assert len(records) == 8
    assert all(r["status"] == "ok" and 0 <= r["accuracy"] <= 1 and r["latency_ms"] > 0 for r in records)
    summary = json.loads((run / "summary.json").read_text())
    within = [r for r in records if r["latency_ms"] <= digits_preset.reward.target_ms]
    reported = [r["arch"] for r in summary["best"]]
    assert reported == [r["arch"] for r in sorted(within, key=lambda r: -r["accuracy"])][:5]

    events = EventAccumulator(str(run)).Reload()
    scalars = set(events.Tags()["scalars"])
    assert set(CHILD_TAGS) | {"search/best_reward"} <= scalars
    assert any(tag.startswith("train/") for tag in scalars), "PPO's own train/ scalars are missing"
    assert len(events.Scalars("child/reward")) == 8, "one point per evaluated child"
    assert "search/best_arch/text_summary" in events.Tags()["tensors"], "best architecture text is missing"
    assert "search/latency_source/text_summary" in events.Tags()["tensors"], "the latency source is not logged"

    controller = load_controller(run)
    proposals = controller.propose(3)
    assert len({str(p.arch) for p in proposals}) == 3
    for p in proposals:
        controller.space.validate(p.arch)
    assert proposals[0].log_prob >= proposals[1].log_prob >= proposals[2].log_prob


def test_search_refuses_to_overwrite_a_run(tmp_path, digits_preset, fake_evaluator, fast_agent):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "config.yaml").write_text("x")
    with pytest.raises(FileExistsError, match="choose another --run-name"):
        run_search(digits_preset, fast_agent, evaluations=2, run_name="taken", runs_dir=tmp_path,
                   evaluator=fake_evaluator, progress_bar=False)  # fmt: skip


def test_same_seed_gives_the_same_search(tmp_path, digits_preset, fake_evaluator, fast_agent):
    def archs(name: str, seed: int) -> list[str]:
        run_search(digits_preset, fast_agent, evaluations=12, run_name=name, runs_dir=tmp_path, seed=seed,
                   evaluator=fake_evaluator, progress_bar=False)  # fmt: skip
        return [r["arch"] for r in EvaluationStore(tmp_path / name / "evaluations.sqlite").records()]

    first, again, other = archs("a", 3), archs("b", 3), archs("c", 4)
    assert first == again
    assert first != other
