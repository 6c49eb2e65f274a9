"""Export of a searched child: the deployable folder, its round-trips, ONNX when installed, refusals."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shutil

import pytest
import torch

from rlnas.child_training import train_child
from rlnas.cli import main
from rlnas.config import load_agent_preset
from rlnas.envs.evaluators import space_for
from rlnas.envs.supernet_evaluator import SUPERNET_FILE
from rlnas.export import DEFAULT_INIT, ExportError, export_child
from rlnas.pruning import build_model
from rlnas.search import run_search
from rlnas.store import EvaluationStore
from rlnas.training.data import load_data
from rlnas.training.supernet import load_supernet

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")


@pytest.fixture
def run_dir(tmp_path, digits_preset, fake_evaluator):
    """A finished random search over the digits space (fake metrics), as `rlnas search` leaves it."""
    run_search(digits_preset, load_agent_preset("random"), evaluations=6, run_name="r", runs_dir=tmp_path,
               evaluator=fake_evaluator, progress_bar=False)  # fmt: skip
    return tmp_path / "r"


def test_export_of_the_best_child_round_trips(run_dir, digits_preset):
    result = export_child(run_dir, onnx=False, progress=False)  # default budget: 2 epochs + 1 fine-tuning epoch
    folder, report = result.folder, result.report
    per_epoch = math.ceil(len(load_data(digits_preset.data).train) / digits_preset.train.batch_size)
    assert digits_preset.train.steps < 2 * per_epoch and digits_preset.train.finetune_steps < per_epoch
    assert (report["steps"], report["finetune_steps"]) == (2 * per_epoch, per_epoch)
    assert folder == run_dir / "exports" / "best"
    for name in ("model.ts", "state_dict.pt", "arch.json", "report.json", "report.md"):
        assert (folder / name).is_file(), name
    assert not (folder / "model.onnx").exists()

    store = EvaluationStore(run_dir / "evaluations.sqlite")
    within = [r for r in store.records() if r["latency_ms"] <= digits_preset.reward.target_ms]
    best = max(within, key=lambda r: r["accuracy"])  # the most accurate child within the run's budget
    assert report["arch"] == best["arch"] and report["source"]["search_id"] == best["id"]
    store.close()
    assert report["init"] == "scratch" and "from scratch" in (folder / "report.md").read_text()
    assert 0.3 < report["test_accuracy"] <= 1.0, "two epochs on digits should learn far above chance (0.1)"
    assert report["latency_ms"] > 0 and report["flops"] > 0
    assert report["params"] == sum(t.numel() for t in torch.jit.load(folder / "model.ts").parameters())
    assert json.loads((folder / "report.json").read_text()) == report
    checks = report["verification"]
    assert checks["state_dict"]["status"] == checks["torchscript"]["status"] == "match"
    assert checks["onnx"] == {"status": "skipped", "reason": "not asked for (--no-onnx)"}

    # A user's round trip, independent of the export's own checks: JSON + state_dict, and TorchScript.
    rebuilt = build_model((folder / "arch.json").read_text())
    assert rebuilt.pruned_keeps is not None and str(rebuilt.arch) == report["arch"]
    rebuilt.load_state_dict(torch.load(folder / "state_dict.pt", weights_only=True))
    scripted = torch.jit.load(folder / "model.ts")
    test = load_data(digits_preset.data).test
    x, y = test.x[-50:], test.y[-50:]
    with torch.inference_mode():
        eager = rebuilt.eval()(x)
        torch.testing.assert_close(scripted(x), eager, rtol=1e-5, atol=1e-5)
    assert float((eager.argmax(1) == y).float().mean()) > 0.3


@pytest.mark.slow
def test_onnx_export_matches_eager(run_dir):
    for module in ("onnx", "onnxscript", "onnxruntime"):
        pytest.importorskip(module, reason=f"{module} is not installed (optional extra: pip install 'rlnas[export]')")
    import numpy as np
    import onnxruntime

    result = export_child(run_dir, epochs=1, finetune_epochs=0, progress=False)
    assert result.report["verification"]["onnx"]["status"] == "match"
    session = onnxruntime.InferenceSession(str(result.folder / "model.onnx"), providers=["CPUExecutionProvider"])
    scripted = torch.jit.load(result.folder / "model.ts")
    x = torch.randn(7, 1, 8, 8)  # another batch size: the batch dimension is dynamic
    (logits,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    np.testing.assert_allclose(logits, scripted(x).detach().numpy(), rtol=1e-4, atol=1e-4)


def test_onnx_is_skipped_with_the_reason_when_not_installed(run_dir, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real(name, *a))
    report = export_child(run_dir, epochs=1, finetune_epochs=0, progress=False).report
    onnx = report["verification"]["onnx"]
    assert onnx["status"] == "skipped"
    assert re.fullmatch(r"onnx( and onnxscript)? not installed: .*rlnas\[export\].*", onnx["reason"])


def test_export_trains_at_least_the_search_budget(tmp_path, digits_preset, fake_evaluator):
    preset = dataclasses.replace(digits_preset, train=dataclasses.replace(digits_preset.train, steps=50))
    run_search(preset, load_agent_preset("random"), evaluations=2, run_name="r", runs_dir=tmp_path,
               evaluator=fake_evaluator, progress_bar=False)  # fmt: skip
    report = export_child(tmp_path / "r", finetune_epochs=0, onnx=False, progress=False).report
    assert report["steps"] == 50 and report["finetune_steps"] == 0
    assert "the search trained each child 50 + 5 steps" in report["training"]


def test_cli_exports_a_given_architecture(run_dir, capsys):
    arch = "conv3x3@0.5|sep3x3@0.25|skip@1.0|mbconv3_k3@0.5"
    code = main(["export", "--run", str(run_dir), "--arch", arch.replace("@1.0", "@1"), "--epochs", "1",
                 "--finetune-epochs", "0",
                 "--no-onnx", "--no-progress"])  # fmt: skip
    assert code == 0
    folder = run_dir / "exports" / "conv3x3-0.5_sep3x3-0.25_skip-1.0_mbconv3_k3-0.5"
    report = json.loads((folder / "report.json").read_text())
    assert report["arch"] == arch and report["source"]["selected"] == "given by --arch"
    assert "search_reward" not in report["source"], "the search never evaluated this child"
    assert f"export folder: {folder}" in capsys.readouterr().out


def test_cli_rejects_an_architecture_outside_the_space(run_dir, capsys):
    code = main(["export", "--run", str(run_dir), "--arch", "conv7x7@0.5|skip@1.0|skip@1.0|skip@1.0"])
    assert code == 2 and "layer 0: operator 'conv7x7'" in capsys.readouterr().err


def test_export_refuses_a_tabular_run(tmp_path, synthetic_table_preset):
    run_search(synthetic_table_preset, load_agent_preset("random"), evaluations=3, run_name="t", runs_dir=tmp_path,
               progress_bar=False)  # fmt: skip
    with pytest.raises(ExportError, match=r"tabular evaluator.*benchmark table.*evaluator: scratch or supernet"):
        export_child(tmp_path / "t", progress=False)


@pytest.fixture(scope="module")
def supernet_run(tmp_path_factory, _digits_preset):
    """A random search of 3 children over the digits space with a supernet trained for a few steps into the run."""
    preset = dataclasses.replace(
        _digits_preset,
        evaluator="supernet",
        supernet=dataclasses.replace(_digits_preset.supernet, steps=12, batch_size=32, resort_every=5),
        reward=dataclasses.replace(_digits_preset.reward, kind="accuracy"),  # measured latency: no budget to miss
    )
    runs = tmp_path_factory.mktemp("runs")
    run_search(preset, "random", evaluations=3, run_name="s", runs_dir=runs, progress_bar=False)
    return runs / "s"


def test_a_supernet_run_exports_from_scratch_by_default(supernet_run, capsys):
    code = main(["export", "--run", str(supernet_run), "--out", str(supernet_run / "sc"), "--epochs", "1",
                 "--finetune-epochs", "0", "--no-onnx", "--no-progress"])  # fmt: skip
    assert code == 0
    report = json.loads((supernet_run / "sc" / "report.json").read_text())
    assert report["init"] == DEFAULT_INIT == "scratch" and report["training"].startswith("from scratch")
    assert report["seconds"]["train"] > 0 and "Training: from scratch" in capsys.readouterr().out


def test_a_supernet_run_exports_fine_tuned_from_the_supernet_when_asked(supernet_run, capsys):
    code = main(["export", "--run", str(supernet_run), "--init", "supernet", "--out", str(supernet_run / "ft"),
                 "--no-onnx", "--no-progress"])  # fmt: skip
    assert code == 0
    report = json.loads((supernet_run / "ft" / "report.json").read_text())
    assert report["init"] == "supernet" and "from the supernet's weights" in capsys.readouterr().out
    per_epoch = report["finetune_steps"]  # default: 2 epochs + 1 fine-tuning epoch
    assert report["steps"] == 2 * per_epoch and report["seconds"]["train"] == 0.0
    assert report["test_accuracy"] > 0.3, "three epochs on digits should learn far above chance (0.1)"
    assert report["verification"]["torchscript"]["status"] == "match"


def test_fine_tuning_from_the_supernet_starts_from_the_inherited_weights(supernet_run, digits_preset):
    space = space_for(digits_preset)
    supernet, _ = load_supernet(supernet_run / SUPERNET_FILE, space)
    arch = space.parse("conv3x3@0.5|mbconv3_k3@0.25|sep3x3@1.0|conv3x3@0.5")
    data = load_data(digits_preset.data)
    untrained = train_child(digits_preset, arch, data.train, steps=0, finetune_steps=0, init="supernet",
                            supernet=supernet).model  # fmt: skip
    inherited = supernet.extract(arch)
    params = dict(inherited.named_parameters())
    assert [n for n, _ in untrained.named_parameters()] == list(params)
    assert all(torch.equal(t, params[n]) for n, t in untrained.named_parameters())
    tuned = train_child(digits_preset, arch, data.train, steps=3, finetune_steps=2, init="supernet",
                        supernet=supernet).model  # fmt: skip
    assert not torch.equal(tuned.classifier.weight, inherited.classifier.weight)
    assert tuned.pruned_keeps == arch.keeps


def test_init_supernet_is_refused_for_a_scratch_run_and_a_missing_supernet(run_dir, supernet_run, tmp_path):
    with pytest.raises(ExportError, match=r"--init supernet needs a run searched with evaluator: supernet"):
        export_child(run_dir, init="supernet", progress=False)
    moved = tmp_path / "moved"
    shutil.copytree(supernet_run, moved, ignore=shutil.ignore_patterns(SUPERNET_FILE, "exports"))
    with pytest.raises(ExportError, match=r"supernet\.pt, which no longer exists: use --init scratch"):
        export_child(moved, init="supernet", progress=False)


def test_export_needs_a_run_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no config\.yaml"):
        export_child(tmp_path, progress=False)
