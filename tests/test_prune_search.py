"""A pruning run through the shared flow: `rlnas search`, report, resume, the controller, `--init-policy`, export."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from safetensors.torch import load_model
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import rlnas
from rlnas.agents.controller import load_controller
from rlnas.cli import main
from rlnas.config import load_agent_preset, load_env_preset
from rlnas.export import ExportError, export_child
from rlnas.pruning.foreign import build_named_model
from rlnas.search import resume_search, run_search
from rlnas.space import GroupSpace, KeepPlan
from rlnas.store import EvaluationStore
from rlnas.training.data import load_data


@pytest.fixture(scope="module")
def fast_agent():
    """PPO updating every 4 plans, so a short search trains the policy."""
    return load_agent_preset({"name": "fast", "n_steps": 4, "batch_size": 4, "n_epochs": 2})


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory, prune_preset, fast_agent):
    runs = tmp_path_factory.mktemp("runs")
    run_search(prune_preset, fast_agent, evaluations=5, run_name="ppo", runs_dir=runs, progress_bar=False)
    return runs / "ppo"


@pytest.mark.filterwarnings(r"ignore:.*torch\.jit\.load.* is deprecated")
def test_cli_search_report_and_export_a_pruning_run(tmp_path, prune_dict, capsys):
    preset_file = tmp_path / "prune_digits.yaml"
    preset_file.write_text(yaml.safe_dump(prune_dict))
    runs = tmp_path / "runs"
    args = ["--env", str(preset_file), "--strategy", "uniform", "--evaluations", "3", "--runs-dir", str(runs)]
    assert main(["search", *args, "--run-name", "u", "--no-progress"]) == 0
    run = runs / "u"
    records = EvaluationStore(run / "evaluations.sqlite").records()
    assert sorted(r["arch"] for r in records) == ["keep:0.25,0.25,0.25,0.25", "keep:0.5,0.5,0.5,0.5", "keep:1,1,1,1"]
    summary = json.loads((run / "summary.json").read_text())
    within = [r for r in records if r["flops"] <= 0.3e6]
    assert summary["best"][0]["arch"] == max(within, key=lambda r: r["accuracy"])["arch"]
    events = EventAccumulator(str(run), size_guidance={"histograms": 0}).Reload()
    assert "arch/layer_3/keep_ratio" in events.Tags()["histograms"]  # one histogram per group
    assert "arch/layer_0/operator" not in events.Tags()["histograms"]  # a plan chooses no operators
    assert main(["report", "--run", str(run)]) == 0
    assert "keep:" in capsys.readouterr().out

    assert main(["export", "--run", str(run), "--epochs", "1"]) == 2
    assert "--finetune-epochs" in capsys.readouterr().err
    assert main(["export", "--run", str(run), "--no-progress"]) == 0
    folder = run / "exports" / "best"
    report = json.loads((folder / "report.json").read_text())
    assert report["arch"] == summary["best"][0]["arch"] and report["finetune_steps"] >= 5
    assert report["flops"] < report["flops_unpruned"] and report["params"] < report["params_unpruned"]
    assert report["verification"]["state_dict"]["status"] == report["verification"]["torchscript"]["status"] == "match"

    # the round trip a user makes: build the unpruned model, cut it to the plan, load the weights
    model = build_named_model("tiny_models:tiny_net", (1, 8, 8), 10)
    rlnas.load_pruned(model, json.loads((folder / "plan.json").read_text()))
    load_model(model, str(folder / "state_dict.safetensors"))
    batch = load_data(load_env_preset(prune_dict).data).test.x[:16]
    with torch.inference_mode():
        torch.testing.assert_close(model.eval()(batch), torch.jit.load(folder / "model.ts")(batch))
    with pytest.raises(ExportError, match="export_pruned"):
        export_child(run)


def test_ppo_run_saves_a_controller_over_the_groups(ppo_run, prune_preset):
    controller = load_controller(ppo_run)
    assert isinstance(controller.space, GroupSpace) and len(controller.space.groups) == 4
    proposals = controller.propose(3)
    assert len({str(p.arch) for p in proposals}) == 3
    assert all(isinstance(p.arch, KeepPlan) and set(p.arch.keeps) <= {0.25, 0.5, 1.0} for p in proposals)
    meta = json.loads((ppo_run / "policy" / "controller.json").read_text())
    assert meta["space"]["kind"] == "groups" and meta["fingerprint"] == controller.space.fingerprint


def test_a_pruning_run_resumes_and_seeds_another(ppo_run, prune_preset, fast_agent, tmp_path):
    resumed = resume_search(ppo_run, evaluations=7, progress_bar=False)
    assert resumed.evaluations == 7 and len(EvaluationStore(ppo_run / "evaluations.sqlite").records()) == 7
    seeded = run_search(
        prune_preset, fast_agent, evaluations=2, run_name="seeded", runs_dir=tmp_path, progress_bar=False,
        init_policy=ppo_run,
    )  # fmt: skip
    assert seeded.controller.space.fingerprint == load_controller(ppo_run).space.fingerprint


def test_a_controller_of_other_weights_is_refused(ppo_run, prune_dict, fast_agent, tmp_path):
    other = load_env_preset({**prune_dict, "seed": 1})  # another initialisation: other weights, another space
    with pytest.raises(ValueError, match="trained for search space"):
        run_search(other, fast_agent, evaluations=2, runs_dir=tmp_path, progress_bar=False, init_policy=ppo_run)


def test_group_space_round_trips_through_its_declaration():
    from rlnas.space import space_from_declaration
    from rlnas.space.groups import Group

    groups = [Group("conv1", 16, 1, "Conv2d", 3, 1, ("conv1",)), Group("dw", 8, 8, "Conv2d/dw", 3, 2)]
    space = GroupSpace(groups, (0.5, 1.0), 8, "tiny@abc")
    again = space_from_declaration(json.loads(json.dumps(space.declaration())))
    assert isinstance(again, GroupSpace) and again.groups == space.groups and again.fingerprint == space.fingerprint
    assert GroupSpace(groups, (0.5, 1.0), 8, "tiny@other").fingerprint != space.fingerprint  # other weights
    plan = space.parse("keep:0.5,1")
    assert str(plan) == "keep:0.5,1" and space.encode(plan).tolist() == [0, 1] and space.decode([0, 1]) == plan
    assert [str(p) for p in space.uniform_members()] == ["keep:0.5,0.5", "keep:1,1"]
    with pytest.raises(ValueError, match=r"group 'dw': keep-ratio 0\.25"):
        space.parse("keep:1,0.25")
    with pytest.raises(ValueError, match="expected 'keep:'"):
        space.parse("conv3x3@1.0|skip@0.5")
