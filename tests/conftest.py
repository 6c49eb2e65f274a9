"""Shared fixtures: a fast digits preset, a tiny search space over every operator, and a fake evaluator."""

from __future__ import annotations

import dataclasses
import itertools
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
import yaml

from rlnas.config import EnvPreset, SpaceConfig, StageConfig, load_env_preset
from rlnas.envs.evaluators import EvalResult, space_for
from rlnas.latency import count_flops, count_params
from rlnas.presets import resolve_preset
from rlnas.pruning import build_model, prune_child
from rlnas.space import Arch, SearchSpace
from rlnas.space.ops import OPERATORS
from rlnas.store import EvaluationStore

# A rough "quality" per operator family for the fake evaluator: richer operators score higher.
_FAKE_QUALITY = {"conv": 0.9, "sep": 0.8, "mbconv": 1.0, "maxpool": 0.4, "avgpool": 0.35, "skip": 0.3}


class FakeEvaluator:
    """Deterministic synthetic metrics without training, for tests that evaluate many children.

    ``accuracy`` rises with richer operators and larger keep-ratios; ``latency_ms`` grows with the FLOPs of
    the real built-and-pruned child, so it also falls with smaller keep-ratios. ``calls`` counts evaluations.
    """

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.settings = {"evaluator": "fake"}  # what the evaluation cache keys on besides the architecture
        self.calls = 0
        self._cache: dict[str, EvalResult] = {}

    def evaluate(self, arch: Arch) -> EvalResult:
        self.calls += 1
        key = str(arch)
        if key not in self._cache:
            self._cache[key] = self._measure(arch)
        return self._cache[key]

    def _measure(self, arch: Arch) -> EvalResult:
        self.space.validate(arch)
        with torch.random.fork_rng(devices=[]):  # building a model must not disturb the caller's RNG
            torch.manual_seed(0)
            model = build_model(self.space, arch)
            params_unpruned = count_params(model)
            prune_child(model, arch)
        flops = count_flops(model, self.space.input_shape)
        quality = [
            _FAKE_QUALITY.get(re.match(r"[a-z]*", op).group(), 0.5) * k**0.3
            for op, k in zip(arch.ops, arch.keeps, strict=True)
        ]
        accuracy = 0.2 + 0.75 * sum(quality) / len(quality)
        return EvalResult(
            arch=str(arch),
            status="ok",
            accuracy=accuracy,
            latency_ms=0.1 + flops / 1e6,
            flops=flops,
            params=count_params(model),
            params_unpruned=params_unpruned,
        )


def pytest_configure(config: pytest.Config) -> None:
    # One intra-op thread: the test models are tiny, and OpenMP workers spinning against other busy processes
    # made the suite up to 8x slower on a shared 2-core machine. (ScratchEvaluator sets this per preset anyway.)
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """ScratchEvaluator sets torch's thread count for the process; keep one test from slowing the others."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def _digits_preset() -> EnvPreset:
    preset = load_env_preset("digits")
    return dataclasses.replace(
        preset,
        train=dataclasses.replace(preset.train, steps=20, finetune_steps=5),
        latency=dataclasses.replace(preset.latency, warmup=1, repeats=3),
    )


@pytest.fixture
def digits_preset(_digits_preset) -> EnvPreset:
    """The shipped digits preset with a much smaller per-child budget (presets are frozen, so sharing is safe)."""
    return _digits_preset


@pytest.fixture(scope="session")
def tiny_space() -> SearchSpace:
    """Every operator over 8x8 inputs: a stride-1 stage that widens 4 -> 6, then a stride-2 stage 6 -> 10.

    Slot 0 changes width (projections for skip/pooling, no residual), slot 1 keeps shape (identity skip,
    residual mbconv, plain pooling), slot 2 changes width and stride, slot 3 keeps shape at 4x4. The widths
    make ``n * keep`` fractional in places (6 * 0.25, 10 * 0.25, 18 * 0.25), so channel rounding is exercised.
    """
    config = SpaceConfig(
        stem_width=4,
        stages=(StageConfig(layers=2, width=6, stride=1), StageConfig(layers=2, width=10, stride=2)),
        operators=tuple(OPERATORS),
        keep_ratios=(0.25, 0.5, 1.0),
    )
    return SearchSpace(config, (1, 8, 8), 10)


@pytest.fixture
def fake_evaluator(digits_preset) -> FakeEvaluator:
    """A :class:`FakeEvaluator` over the digits preset's search space."""
    return FakeEvaluator(space_for(digits_preset))


REPO = Path(__file__).resolve().parents[1]
NAS_BENCH_MACRO = REPO.parent / "shared" / "benchmarks" / "nas-bench-macro" / "nas-bench-macro_cifar10.json"


@pytest.fixture(scope="session")
def macro_preset() -> EnvPreset:
    """The shipped NAS-Bench-Macro preset, pointed at the benchmark file; skips when the file is absent."""
    if not NAS_BENCH_MACRO.is_file():
        pytest.skip(f"NAS-Bench-Macro table not found at {NAS_BENCH_MACRO}")
    return load_env_preset("nas_bench_macro", [f"table.path={NAS_BENCH_MACRO}"])


@pytest.fixture(scope="session")
def synthetic_table_preset(tmp_path_factory) -> EnvPreset:
    """A 4-layer, 3-operator tabular space over a CSV table (81 rows, one column per layer).

    Accuracy is additive: each layer adds 0.0, 0.01 or 0.02 for codes 0, 1, 2, except that code 2 at layer 3
    adds 0.05 -- so the unique optimum is "2222" (accuracy 0.86), and greedy per-layer choices find it. ``skip``
    is the identity at layers 1-3, so the 81 architectures build 45 distinct networks; the environment evaluates
    each by its representative's row (:meth:`rlnas.space.SearchSpace.canonical_action`).
    """
    path = tmp_path_factory.mktemp("table") / "synthetic.csv"
    rows = ["layer_0,layer_1,layer_2,layer_3,acc,flops,params"]
    for codes in itertools.product("012", repeat=4):
        gains = [0.01 * int(c) for c in codes[:3]] + [0.05 if codes[3] == "2" else 0.01 * int(codes[3])]
        flops = 1_000_000 * (1 + sum(int(c) for c in codes))
        params = 1000 + int("".join(codes), 3)  # unique, so no two rows are identical (equivalent) records
        rows.append(f"{','.join(codes)},{75 + 100 * sum(gains):.2f},{flops},{params}")
    path.write_text("\n".join(rows) + "\n")
    return load_env_preset(
        {
            "name": "synthetic",
            "data": {"name": "digits"},
            "space": {
                "stem_width": 4,
                "stages": [{"layers": 4, "width": 8}],
                "operators": ["skip", "conv3x3", "mbconv3_k3"],
                "keep_ratios": [1.0],
            },
            "train": {"steps": 0, "finetune_steps": 0},
            "evaluator": "tabular",
            "table": {"path": str(path), "accuracy": "acc", "flops": "flops", "params": "params"},
            "reward": {"kind": "accuracy"},
        }
    )


@pytest.fixture(scope="session")
def prune_dict() -> dict:
    """The digits preset with a model section (tests/tiny_models.py) instead of a search space."""
    data = yaml.safe_load(resolve_preset("digits", "envs").read_text())
    del data["space"], data["evaluator"]
    data["name"] = "prune_digits"
    data["model"] = {"name": "tiny_models:tiny_net", "keep_ratios": [0.25, 0.5, 1.0]}
    data["train"] |= {"finetune_steps": 5, "recalibration_batches": 2}
    data["latency"] |= {"warmup": 1, "repeats": 3, "source": "measured"}
    data["reward"] = {"kind": "budget", "cost": "flops", "target_mflops": 0.3}
    return data


@pytest.fixture(scope="session")
def prune_preset(prune_dict) -> EnvPreset:
    """:func:`prune_dict` loaded."""
    return load_env_preset(prune_dict)


def kill_when_stored(process: subprocess.Popen, store_file: Path, children: int, timeout_s: float = 300) -> None:
    """SIGKILL a search ``process`` once its store holds ``children`` children (it must still be running)."""
    deadline = time.time() + timeout_s
    while time.time() < deadline and process.poll() is None:
        if store_file.exists() and len(EvaluationStore(store_file)) >= children:
            break
        time.sleep(0.2)
    assert process.poll() is None, f"the search ended before it could be killed: {process.stderr.read().decode()}"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
