"""Export a pruning run's chosen plan: fine-tune it longer, test it, measure it, write a deployable folder.

``runs/NAME/exports/<best | plan>/`` holds ``model.ts`` (TorchScript, traced), ``model.onnx`` (when the ``onnx``
extra is installed), ``state_dict.safetensors`` with ``plan.json`` (the kept channel indices of every group:
``rlnas.load_pruned(model, plan)`` cuts a freshly built model to the pruned shape, so the state dict loads), and
``report.json`` / ``report.md``, as :mod:`rlnas.export` writes for children rlnas builds.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model
from torch import Tensor, nn
from tqdm.auto import tqdm

from rlnas.budget import run_budget
from rlnas.config import EnvPreset, load_env_preset
from rlnas.envs.prune_evaluator import PruneEvaluator
from rlnas.export import (
    VERIFY_BATCH,
    ExportError,
    ExportResult,
    _compare,
    _select,
    _slug,
    deployment,
    report_rows,
    write_onnx,
    write_report,
)
from rlnas.latency import count_flops, count_params, measure_latency
from rlnas.pruning.foreign.engine import load_pruned
from rlnas.pruning.foreign.models import build_named_model
from rlnas.search import read_run_config
from rlnas.training.data import dataset_shape
from rlnas.training.trainer import accuracy

PLAN_FILE, WEIGHTS_FILE = "plan.json", "state_dict.safetensors"


def export_pruned(
    run_dir: str | Path,
    arch: str | None = None,
    *,
    finetune_epochs: int | None = None,
    device: str = "cpu",
    out: str | Path | None = None,
    onnx: bool = True,
    progress: bool = True,
) -> ExportResult:
    """Prune the run's trained model to its chosen plan (or ``arch``, ``keep:...``), fine-tune and export it.

    The chosen plan is the most accurate within the run's budget (the best reward without one). It is pruned,
    BatchNorm recalibrated and fine-tuned for ``finetune_epochs`` passes over the training split (default one
    pass, or the search's ``train.finetune_steps`` where that is more). The folder is ``out`` or
    ``run_dir/exports/<best | plan>``. Raises :class:`~rlnas.export.ExportError` when the run prunes no model, its
    trained model changed since the search, or an exported format does not match the eager model.
    """
    if finetune_epochs is not None and finetune_epochs < 0:
        raise ValueError(f"finetune_epochs must be >= 0, got {finetune_epochs}")
    run_dir = Path(run_dir)
    resolved = read_run_config(run_dir)
    preset = load_env_preset(resolved["env"])
    if preset.model is None:
        raise ExportError(f"{run_dir} searched architectures, not a model's pruning plan: use `rlnas export`")
    say = tqdm.write if progress else (lambda _: None)
    evaluator = PruneEvaluator(preset, device)
    space = evaluator.space
    if space.fingerprint != resolved["search"].get("space_fingerprint"):
        raise ExportError(
            f"{run_dir} pruned another model (its weights or groups differ from what model: {preset.model.name} "
            "gives now, e.g. another checkpoint): export with the weights it searched"
        )
    budget = run_budget(preset.reward, resolved["search"].get("target_latency_ms"))
    source = _select(run_dir, None if arch is None else str(space.parse(arch)), budget)
    plan = space.parse(source["arch"])
    data, t = evaluator.data, preset.train
    per_epoch = math.ceil(len(data.train) / t.batch_size)
    steps = finetune_epochs * per_epoch if finetune_epochs is not None else max(per_epoch, t.finetune_steps)
    training = (
        f"BatchNorm recalibrated on {t.recalibration_batches} batches, then fine-tuned {steps} steps "
        f"({steps / per_epoch:.3g} epochs) at lr {t.finetune_lr:g}, batch {t.batch_size}, {len(data.train)} "
        f"training images (the search fine-tuned each plan {t.finetune_steps} steps)"
    )
    say(f"exporting {plan} ({source['selected']}): {training}")
    model, kept = evaluator.finetuned(plan, steps, progress="fine-tune" if progress else None)
    test_acc = accuracy(model, data.test, batch_size=t.eval_batch_size, device=device)
    val_acc = accuracy(model, data.val, batch_size=t.eval_batch_size, device=device)
    model = model.cpu().eval()
    latency_ms = measure_latency(model, evaluator.input_shape, preset.latency)

    folder = Path(out) if out else run_dir / "exports" / ("best" if arch is None else _slug(str(plan)))
    folder.mkdir(parents=True, exist_ok=True)
    checks = write_pruned(model, kept, preset, folder, data.test.x[:VERIFY_BATCH], onnx)
    report = {
        "arch": str(plan),
        "source": source,
        "training": training,
        "finetune_steps": steps,
        "test_accuracy": test_acc,
        "val_accuracy": val_acc,
        "latency_ms": latency_ms,
        "flops": count_flops(model, evaluator.input_shape),
        "flops_unpruned": evaluator.flops_unpruned,
        "params": count_params(model),
        "params_unpruned": evaluator.params_unpruned,
        "model": preset.model.name,
        "env_preset": preset.name,
        "space_fingerprint": space.fingerprint,
        **deployment(preset, device, evaluator.input_shape, data, checks, folder),
    }
    write_report(folder, report, _markdown(report))
    say(f"exported to {folder}: test accuracy {test_acc:.4f}, latency {latency_ms:.3f} ms")
    return ExportResult(folder, report)


def rebuild_pruned(preset: EnvPreset, folder: str | Path) -> nn.Module:
    """The exported pruned model, rebuilt from the preset's model factory, ``plan.json`` and the safetensors
    weights (what a user does with :func:`rlnas.load_pruned`)."""
    folder, cfg = Path(folder), preset.model
    input_shape, num_classes = dataset_shape(preset.data)
    model = build_named_model(cfg.name, input_shape, num_classes, cfg.small_input)
    load_pruned(model, json.loads((folder / PLAN_FILE).read_text()), cfg.ignored_layers)
    load_model(model, str(folder / WEIGHTS_FILE))
    return model.eval()


def write_pruned(
    model: nn.Module, plan: dict, preset: EnvPreset, folder: Path, batch: Tensor, onnx: bool
) -> dict[str, dict[str, Any]]:
    """Write ``plan.json``, ``state_dict.safetensors``, ``model.ts`` and ``model.onnx``; check each against
    ``model`` on ``batch`` (the state dict through :func:`rebuild_pruned`)."""
    with torch.inference_mode():
        expected = model(batch)
    (folder / PLAN_FILE).write_text(json.dumps(plan, indent=1))
    save_model(model, str(folder / WEIGHTS_FILE))
    checks = {"state_dict": _compare(rebuild_pruned(preset, folder), batch, expected)}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit.* is deprecated")
        torch.jit.save(torch.jit.trace(model, batch[:1]), folder / "model.ts")
        checks["torchscript"] = _compare(torch.jit.load(folder / "model.ts"), batch, expected)
    checks["onnx"] = write_onnx(model, folder, batch, expected, onnx)
    return checks


def _markdown(r: dict[str, Any]) -> str:
    src = r["source"]
    lines = [
        f"# Export of `{r['model']}` pruned to `{r['arch']}`",
        "",
        f"Source: {src['selected']} ({r['env_preset']} preset, space {r['space_fingerprint']}).",
        f"Training: {r['training']}.",
        "",
        *report_rows(r),
        "",
        "```python",
        "import json, torch, rlnas",
        "from safetensors.torch import load_model",
        f"model = ...  # the unpruned {r['model']}, built as the preset builds it",
        f'rlnas.load_pruned(model, json.load(open("{PLAN_FILE}")))  # cut to the pruned shape',
        f'load_model(model, "{WEIGHTS_FILE}")',
        'scripted = torch.jit.load("model.ts")  # no rlnas needed',
        "```",
        "",
    ]
    return "\n".join(lines)
