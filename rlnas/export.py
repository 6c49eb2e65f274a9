"""Export a searched child: train it on a larger budget (from scratch, or from the search's supernet), prune it,
test it, measure it, write a deployable folder.

``runs/NAME/exports/<best | arch>/`` holds ``model.ts`` (TorchScript), ``model.onnx`` (when the ``onnx``
extra is installed), ``state_dict.pt`` with ``arch.json`` (``rlnas.build_model(arch_json)`` rebuilds the
pruned model, so the state dict loads), and ``report.json`` / ``report.md`` (test accuracy, latency, FLOPs,
parameters, device, how it was trained, and how well each format matched the eager model on a test batch).
"""

from __future__ import annotations

import importlib.util
import json
import math
import platform
import re
import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

import rlnas
from rlnas.budget import Budget, best_children, run_budget
from rlnas.child_training import INITS, Init, describe_training, train_child
from rlnas.config import EnvPreset, load_env_preset
from rlnas.envs.evaluators import space_for
from rlnas.envs.supernet_evaluator import SUPERNET_FILE
from rlnas.latency import count_flops, count_params, measure_latency, torch_threads
from rlnas.latency.device import device_name
from rlnas.pruning import build_model
from rlnas.search import read_run_config
from rlnas.space import ChildNet
from rlnas.store import EvaluationStore
from rlnas.training.data import DataSplits, load_data
from rlnas.training.supernet import Supernet, load_supernet
from rlnas.training.trainer import accuracy

VERIFY_BATCH = 32
TOLERANCE = 1e-4  # absolute and relative, on the logits
DEFAULT_INIT: Init = "scratch"  # also for a supernet run: more accurate at the same steps (docs/end-to-end.md)


class ExportError(RuntimeError):
    """An export could not be made or did not verify; the message says why."""


@dataclass(frozen=True)
class ExportResult:
    """The export folder and its report (the content of ``report.json``)."""

    folder: Path
    report: dict[str, Any]


def export_child(
    run_dir: str | Path,
    arch: str | None = None,
    *,
    init: Init | None = None,
    epochs: int | None = None,
    finetune_epochs: int | None = None,
    device: str = "cpu",
    out: str | Path | None = None,
    onnx: bool = True,
    progress: bool = True,
) -> ExportResult:
    """Train the run's best child (or ``arch``), prune, evaluate, measure and export it.

    ``init`` (default: :data:`DEFAULT_INIT`): ``scratch`` trains ``epochs`` passes over the training split on the
    full-width child, prunes it to its keep-ratios, recalibrates BatchNorm and fine-tunes for ``finetune_epochs``
    passes; ``supernet`` (runs searched with a supernet only) extracts the pruned child with the supernet's weights
    and fine-tunes it for as many steps in all (:mod:`rlnas.child_training`). By default 2 and 1 passes, or the
    search's per-child budget (``train.steps``, ``train.finetune_steps``) where that is more: the export never
    trains less than the search. The run's env preset gives data, space, optimizer and latency settings. The folder
    is ``out`` or ``run_dir/exports/<best | arch>``. Raises :class:`ExportError` when the run's evaluator does not train
    (tabular), ``init`` does not fit the run, or an exported format does not match the eager model.
    """
    if (epochs is not None and epochs < 1) or (finetune_epochs is not None and finetune_epochs < 0):
        raise ValueError(f"epochs must be >= 1 and finetune_epochs >= 0, got {epochs} and {finetune_epochs}")
    run_dir = Path(run_dir)
    resolved = read_run_config(run_dir)
    preset = load_env_preset(resolved["env"])
    init = _checked_init(preset, init, run_dir)
    space = space_for(preset)
    budget = run_budget(preset.reward, resolved["search"].get("target_latency_ms"))
    source = _select(run_dir, None if arch is None else str(space.parse(arch)), budget)  # "conv3x3@1" -> "...1.0"
    child = space.parse(source["arch"])
    say = tqdm.write if progress else (lambda _: None)

    data = load_data(preset.data)
    per_epoch = math.ceil(len(data.train) / preset.train.batch_size)
    t = preset.train
    steps = epochs * per_epoch if epochs is not None else max(2 * per_epoch, t.steps)
    finetune_steps = finetune_epochs * per_epoch if finetune_epochs is not None else max(per_epoch, t.finetune_steps)
    training = (
        f"{describe_training(init, steps, finetune_steps, per_epoch)}; batch {t.batch_size}, "
        f"{len(data.train)} training images (the search trained each child {t.steps} + {t.finetune_steps} steps)"
    )
    say(f"exporting {child} ({source['selected']}), training {training}")
    supernet = _run_supernet(run_dir, resolved, preset, device) if init == "supernet" else None
    threads = torch_threads(preset.train.threads) if preset.train.threads else nullcontext()
    with threads:
        trained = train_child(
            preset, child, data.train, steps=steps, finetune_steps=finetune_steps, init=init, supernet=supernet,
            device=device, progress=progress,
        )  # fmt: skip
        model = trained.model
        test_acc = accuracy(model, data.test, batch_size=preset.train.eval_batch_size, device=device)
        val_acc = accuracy(model, data.val, batch_size=preset.train.eval_batch_size, device=device)
    latency_ms = measure_latency(model, space.input_shape, preset.latency)
    model = model.cpu().eval()

    folder = Path(out) if out else run_dir / "exports" / ("best" if arch is None else _slug(str(child)))
    folder.mkdir(parents=True, exist_ok=True)
    batch = data.test.x[:VERIFY_BATCH]
    checks = _write_formats(model, folder, batch, onnx)
    report = {
        "arch": str(child),
        "source": source,
        "init": init,
        "training": training,
        "steps": steps,
        "finetune_steps": finetune_steps,
        "seconds": trained.seconds,
        "test_accuracy": test_acc,
        "val_accuracy": val_acc,
        "latency_ms": latency_ms,
        "flops": count_flops(model, space.input_shape),
        "params": count_params(model),
        "params_unpruned": trained.params_unpruned,
        "env_preset": preset.name,
        "space_fingerprint": space.fingerprint,
        **deployment(preset, device, space.input_shape, data, checks, folder),
    }
    write_report(folder, report, _markdown(report))
    how = "from scratch" if init == "scratch" else "fine-tuned from the supernet's weights"
    say(f"exported to {folder} (trained {how}): test accuracy {test_acc:.4f}, latency {latency_ms:.3f} ms")
    return ExportResult(folder, report)


def _checked_init(preset: EnvPreset, init: Init | None, run_dir: Path) -> Init:
    """The init to train from: ``init`` if the run allows it, else :data:`DEFAULT_INIT`; refuses a tabular run."""
    if preset.model is not None:
        raise ExportError(
            f"{run_dir} pruned a trained model: export its plan with rlnas.export_pruned.export_pruned "
            "(`rlnas export` chooses it)"
        )
    if preset.evaluator == "tabular":
        raise ExportError(
            f"{run_dir} used the tabular evaluator (every child's metrics were looked up in a benchmark table; "
            "the run has no data set to train on): export needs a run with evaluator: scratch or supernet"
        )
    if init is not None and init not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}, got {init!r}")
    if init == "supernet" and preset.evaluator != "supernet":
        raise ExportError(
            f"--init supernet needs a run searched with evaluator: supernet; {run_dir} used {preset.evaluator} "
            "and has no supernet: use --init scratch"
        )
    return init or DEFAULT_INIT


def _run_supernet(run_dir: Path, resolved: dict[str, Any], preset: EnvPreset, device: str) -> Supernet:
    """The supernet a run searched with: the one it was given (``--supernet``), else its own ``supernet.pt``."""
    given = resolved["search"].get("supernet")
    path = Path(given) if given else run_dir / SUPERNET_FILE
    if not path.is_file():
        raise ExportError(f"{run_dir} searched with the supernet {path}, which no longer exists: use --init scratch")
    return load_supernet(path, space_for(preset), device)[0]


def _select(run_dir: Path, arch: str | None, budget: Budget | None) -> dict[str, Any]:
    """Which child to export, with what the search measured for it (if it evaluated it)."""
    store_path = run_dir / "evaluations.sqlite"
    store = EvaluationStore(store_path) if store_path.is_file() else None
    try:
        if arch is None:
            record, selected = _default_child(run_dir, store.records() if store is not None else [], budget)
        else:
            records = [r for r in (store.records() if store else []) if r["arch"] == arch]
            record, selected = max(records, key=lambda r: r["reward"], default=None), "given by --arch"
    finally:
        if store is not None:
            store.close()
    source: dict[str, Any] = {"arch": arch if record is None else record["arch"], "selected": selected}
    if record is not None:
        source |= {"search_id": record["id"], "search_reward": record["reward"]}
        source |= {"search_val_accuracy": record["accuracy"], "search_latency_ms": record["latency_ms"]}
    return source


def _default_child(run_dir: Path, records: list[dict[str, Any]], budget: Budget | None) -> tuple[dict[str, Any], str]:
    """The child a run exports by default: the most accurate within its budget (the best reward without one)."""
    if not records:
        raise ExportError(f"{run_dir} has no evaluated children: pass --arch, or export a finished run")
    best = best_children(records, budget, 1)
    if budget is None:
        return best[0], "best reward of the run"
    if not best:
        closest = budget.closest(records)
        hint = f"; the cheapest was {closest['arch']}" if closest else ""
        raise ExportError(
            f"no child of {run_dir} met its budget {budget.describe()}{hint}: pass --arch to export a child anyway"
        )
    return best[0], f"most accurate child within the budget {budget.describe()}"


def _slug(arch: str) -> str:
    return re.sub(r"[^A-Za-z0-9.\-]+", "_", arch.replace("@", "-"))


def _write_formats(model: ChildNet, folder: Path, batch: Tensor, onnx: bool) -> dict[str, dict[str, Any]]:
    """Write ``state_dict.pt``, ``arch.json``, ``model.ts`` and ``model.onnx``; check each against ``model``."""
    with torch.inference_mode():
        expected = model(batch)
    checks = {}
    torch.save(model.state_dict(), folder / "state_dict.pt")
    (folder / "arch.json").write_text(json.dumps(json.loads(model.arch_json()), indent=2))
    rebuilt = build_model((folder / "arch.json").read_text())
    rebuilt.load_state_dict(torch.load(folder / "state_dict.pt", weights_only=True))
    checks["state_dict"] = _compare(rebuilt.eval(), batch, expected)

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit.* is deprecated")
        torch.jit.save(torch.jit.script(model), folder / "model.ts")
        scripted = torch.jit.load(folder / "model.ts")
    checks["torchscript"] = _compare(scripted, batch, expected)

    checks["onnx"] = write_onnx(model, folder, batch, expected, onnx)
    return checks


def write_onnx(model: torch.nn.Module, folder: Path, batch: Tensor, expected: Tensor, onnx: bool) -> dict[str, Any]:
    """Write ``model.onnx`` (dynamic batch) when asked and installed; its check against ``expected`` on ``batch``."""
    onnx_file = folder / "model.onnx"
    onnx_file.unlink(missing_ok=True)
    if not onnx:
        return {"status": "skipped", "reason": "not asked for (--no-onnx)"}
    if missing := _missing("onnx", "onnxscript"):
        return {"status": "skipped", "reason": f"{missing} not installed: pip install 'rlnas[export]'"}
    torch.onnx.export(
        model, (batch,), onnx_file, dynamo=True, dynamic_shapes={"x": {0: torch.export.Dim("batch")}},
        external_data=False, verbose=False,
    )  # fmt: skip
    return _compare_onnx(onnx_file, batch, expected)


def _missing(*modules: str) -> str | None:
    names = [m for m in modules if importlib.util.find_spec(m) is None]
    return " and ".join(names) or None


@torch.inference_mode()
def _compare(module: torch.nn.Module, batch: Tensor, expected: Tensor) -> dict[str, Any]:
    return _verdict(module(batch), expected)


def _compare_onnx(path: Path, batch: Tensor, expected: Tensor) -> dict[str, Any]:
    if missing := _missing("onnxruntime"):
        return {"status": "unchecked", "reason": f"{missing} not installed: pip install 'rlnas[export]'"}
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (output,) = session.run(None, {session.get_inputs()[0].name: batch.numpy()})
    return _verdict(torch.from_numpy(output), expected)


def _verdict(actual: Tensor, expected: Tensor) -> dict[str, Any]:
    diff = float((actual - expected).abs().max())
    close = torch.allclose(actual, expected, rtol=TOLERANCE, atol=TOLERANCE)
    return {"status": "match" if close else "mismatch", "max_abs_diff": diff, "batch": len(expected)}


def deployment(
    preset: EnvPreset, device: str, input_shape: tuple[int, ...], data: DataSplits, checks: dict, folder: Path
) -> dict[str, Any]:
    """The sections every export report has: where it was trained and timed, its input, each format's check,
    the versions and the files written."""
    return {
        "device": {
            "train": str(device),
            "latency": preset.latency.device,
            "latency_device_name": device_name(preset.latency.device),
            "latency_threads": preset.latency.threads,
            "latency_batch_size": preset.latency.batch_size,
        },
        "input": {
            "shape": list(input_shape),
            "data": preset.data.name,
            "normalize_mean": list(data.mean),
            "normalize_std": list(data.std),
        },
        "verification": checks,
        "versions": {"rlnas": rlnas.__version__, "torch": torch.__version__, "python": platform.python_version()},
        "files": sorted(p.name for p in folder.iterdir() if p.name not in ("report.json", "report.md")),
    }


def write_report(folder: Path, report: dict[str, Any], markdown: str) -> None:
    """Write ``report.json`` and ``report.md``; raise :class:`ExportError` if a format did not match."""
    (folder / "report.json").write_text(json.dumps(report, indent=2))
    (folder / "report.md").write_text(markdown)
    failed = [name for name, check in report["verification"].items() if check["status"] == "mismatch"]
    if failed:
        raise ExportError(f"{', '.join(failed)} output differs from the eager model on a test batch: see {folder}")


def report_rows(r: dict[str, Any]) -> list[str]:
    """A report's metric table, its format-check table and its input, as Markdown lines."""
    dev, inp = r["device"], r["input"]
    unpruned = f" (unpruned {r['flops_unpruned'] / 1e6:.3f} M)" if "flops_unpruned" in r else ""
    lines = [
        "| metric | value |",
        "|---|---|",
        f"| test accuracy | {r['test_accuracy']:.4f} |",
        f"| validation accuracy | {r['val_accuracy']:.4f} |",
        f"| latency | {r['latency_ms']:.3f} ms ({dev['latency']}: {dev['latency_device_name']}, "
        f"{dev['latency_threads']} thread(s), batch {dev['latency_batch_size']}) |",
        f"| FLOPs | {r['flops'] / 1e6:.3f} M{unpruned} |",
        f"| parameters | {r['params']} (unpruned {r['params_unpruned']}) |",
        f"| trained on | {dev['train']} |",
        "",
        "| format | check on a test batch |",
        "|---|---|",
    ]
    for name, check in r["verification"].items():
        detail = f"max abs diff {check['max_abs_diff']:.2e}" if "max_abs_diff" in check else check["reason"]
        lines.append(f"| {name} | {check['status']} ({detail}) |")
    return [
        *lines,
        "",
        f"Input: {inp['shape']} ({inp['data']}), normalised per channel with mean {inp['normalize_mean']} and "
        f"std {inp['normalize_std']} of the raw training images as rlnas reads them.",
    ]


def _markdown(r: dict[str, Any]) -> str:
    src = r["source"]
    searched = "."
    if "search_reward" in src:
        searched = f"; search reward {src['search_reward']:.4f}, search val. accuracy {src['search_val_accuracy']:.4f}."
    lines = [
        f"# Export of `{r['arch']}`",
        "",
        f"Source: {src['selected']} ({r['env_preset']} preset, space {r['space_fingerprint']}){searched}",
        f"Training: {r['training']}.",
        "",
        *report_rows(r),
        "",
        "```python",
        "import torch, rlnas",
        'model = rlnas.build_model(open("arch.json").read())  # the pruned shape',
        'model.load_state_dict(torch.load("state_dict.pt"))',
        'scripted = torch.jit.load("model.ts")  # no rlnas needed',
        "```",
        "",
    ]
    return "\n".join(lines)
