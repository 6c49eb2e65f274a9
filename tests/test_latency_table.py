"""Latency lookup table: configurations cover every pruned child, prediction sums entries, files are checked;
the preset's latency source (measured, table, flops, auto)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from rlnas.config import ConfigError, LatencyConfig, StageConfig
from rlnas.envs.evaluators import space_for
from rlnas.latency import count_flops, measure_latency
from rlnas.latency.build import build_table
from rlnas.latency.layers import HEAD, STEM, child_layer_configs, enumerate_layers, list_layer_configs
from rlnas.latency.overhead import Overhead, fit_overhead
from rlnas.latency.source import default_table_path, latency_source
from rlnas.latency.table import LatencyTable
from rlnas.latency.timing import time_modules
from rlnas.latency.validate import kendall_tau, spearman_rho, validate
from rlnas.pruning import build_model, prune_child
from rlnas.space import SearchSpace

FAST = LatencyConfig(device="cpu", threads=1, batch_size=1, warmup=1, repeats=2)


@pytest.fixture(scope="module")
def digits_table(tmp_path_factory) -> tuple[LatencyTable, SearchSpace]:
    from rlnas.config import load_env_preset

    space = space_for(load_env_preset("digits"))
    torch.set_num_threads(1)
    table = build_table(space, FAST, rounds=2, calibration=4, progress=False)
    return table, space


def test_configurations_cover_every_pruned_child(tiny_space):
    """For random children of a space over every operator, the real pruned child runs exactly the listed configs."""
    enum = enumerate_layers(tiny_space)
    listed = set(enum.configs)
    assert len(listed) == len(enum.configs)  # distinct
    rng = np.random.default_rng(0)
    archs = [tiny_space.sample(rng) for _ in range(40)]
    archs += [tiny_space.uniform(op, k) for op in tiny_space.operators for k in tiny_space.keep_ratios]
    for arch in archs:
        torch.manual_seed(1)
        model = prune_child(build_model(tiny_space, arch))
        real = child_layer_configs(model, tiny_space)
        assert real == enum.arch_configs(arch), str(arch)
        assert set(real) <= listed


def test_configurations_follow_the_pruning_rules(tiny_space):
    configs = list_layer_configs(tiny_space)
    assert configs[0].op == STEM and configs[-1].op == HEAD
    by = {(c.position, c.op, c.variant) for c in configs}
    # slot 0 widens 4 -> 6: skip and pooling need a projection, mbconv has no residual
    assert (0, "skip", "projection") in by and (0, "skip", "identity") not in by
    assert (0, "mbconv3_k3", "") in by
    # slot 1 keeps the shape: identity skip, residual mbconv, plain pooling
    assert (1, "skip", "identity") in by and (1, "mbconv3_k3", "residual") in by and (1, "maxpool3x3", "") in by
    for c in configs:
        if c.variant == "residual":
            assert c.c_in == c.c_out
        if c.op.startswith("conv") and c.position == 1:
            assert c.c_out in {2, 3, 6}  # kept_channels(6, keep) for keeps 0.25, 0.5, 1.0
    heads = {c.c_in for c in configs if c.op == HEAD}
    assert heads == {c.c_out for c in configs if c.position == tiny_space.num_layers - 1}


class FakeClock:
    """A clock that only the fake modules move: each call of a :class:`_Takes` advances it by its scripted time."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _Takes(torch.nn.Module):
    """A forward pass that takes the next of ``ms`` (cycled) milliseconds on ``clock``."""

    def __init__(self, clock: FakeClock, *ms: float) -> None:
        super().__init__()
        self.clock, self.ms, self.calls = clock, ms, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.clock.now += self.ms[self.calls % len(self.ms)] / 1000
        self.calls += 1
        return x


@pytest.mark.parametrize(("statistic", "expected"), [("min", 1.0), ("median", 6.0)])
def test_latency_statistic_picks_the_least_disturbed_call_or_the_median(statistic, expected):
    """Every other call stalls for 6 ms instead of 1 ms (a busy shared machine)."""
    cfg = dataclasses.replace(FAST, warmup=0, repeats=5, statistic=statistic)
    clock = FakeClock()
    model = _Takes(clock, 6.0, 1.0)
    assert measure_latency(model, (1,), cfg, clock=clock) == pytest.approx(expected)
    assert model.calls == 5


@pytest.mark.parametrize(("aggregate", "expected"), [("min", [2.0, 5.0]), ("median", [3.0, 7.0])])
def test_interleaved_rounds_aggregate_each_modules_round_figures(aggregate, expected):
    """Per round the ``statistic`` of its calls; over rounds the ``aggregate``; warm-up calls are not timed."""
    cfg = dataclasses.replace(FAST, warmup=2, repeats=1, statistic="min")
    clock = FakeClock()
    # module 0's timed calls take 4, 2, 3 ms in rounds 1-3 (warm-up calls take 100 ms); module 1's 9, 5, 7 ms
    fast = _Takes(clock, 100, 100, 4, 100, 100, 2, 100, 100, 3)
    slow = _Takes(clock, 100, 100, 9, 100, 100, 5, 100, 100, 7)
    x = torch.zeros(1)
    times = time_modules([fast, slow], [x, x], cfg, 3, aggregate, seed=0, progress=False, desc="", clock=clock)
    assert times == pytest.approx(expected)
    assert fast.calls == slow.calls == 3 * (2 + 1)


def test_table_round_trips_through_its_file(digits_table, tmp_path):
    table, space = digits_table
    path = table.save(tmp_path / "t.json")
    data = json.loads(path.read_text())
    assert data["space_fingerprint"] == space.fingerprint
    assert data["threads"] == 1 and data["batch_size"] == 1 and data["device"] == "cpu"
    assert data["device_name"] and data["torch_version"] == torch.__version__ and data["format_version"] == 1
    loaded = LatencyTable.load(path, space, FAST)
    assert loaded.entries == table.entries
    assert (loaded.overhead, loaded.overhead_fit, loaded.fits) == (table.overhead, table.overhead_fit, table.fits)
    rng = np.random.default_rng(3)
    for arch in (space.sample(rng) for _ in range(20)):
        assert loaded.predict(arch) == pytest.approx(table.predict(arch))


def test_prediction_sums_exactly_the_childs_entries(digits_table):
    table, space = digits_table
    table = dataclasses.replace(table, _fast=None)
    # distinct powers of two per entry: the sum identifies which entries were used, and how often
    table.entries = {c: 2.0**i for i, c in enumerate(table.entries)}
    per_op = {op: 0.01 * (k + 1) for k, op in enumerate(space.operators)}
    table.overhead = Overhead(0.25, 1.5, per_op)
    rng = np.random.default_rng(4)
    for arch in [space.sample(rng) for _ in range(20)]:
        configs = table.layer_configs(arch)
        assert len(configs) == space.num_layers + 2
        expected = sum(table.entries[c] for c in configs)
        assert table.summed(arch) == expected
        overhead = 0.25 + sum(per_op[op] for op in arch.ops)
        assert table.predict(arch) == pytest.approx(overhead + 1.5 * expected)
        assert table.predict(str(arch)) == table.predict(arch)


def test_operator_overhead_fit_recovers_per_operator_costs(digits_table):
    """End-to-end = summed entries + a per-operator cost per layer: the ``operators`` fit finds those costs
    (the ridge pull towards a shared cost is negligible on 300 children); ``intercept`` fits only their mean."""
    _, space = digits_table
    rng = np.random.default_rng(5)
    archs = [space.sample(rng) for _ in range(300)]
    truth = {op: 0.002 * k for k, op in enumerate(space.operators)}
    summed = rng.uniform(0.5, 2.0, size=len(archs))
    measured = summed + np.array([sum(truth[op] for op in a.ops) for a in archs])
    fitted = fit_overhead(space, archs, summed, measured, "operators")
    assert (fitted.intercept_ms, fitted.scale) == (0.0, 1.0)
    assert fitted.per_operator_ms == pytest.approx(truth, abs=2e-4)
    assert fit_overhead(space, archs, summed, measured, "intercept").per_operator_ms == {}


def test_table_for_another_space_is_refused(digits_table, tmp_path):
    table, space = digits_table
    path = table.save(tmp_path / "t.json")
    other_config = dataclasses.replace(space.config, stages=(StageConfig(2, 16, 1), StageConfig(2, 32, 2)))
    other = SearchSpace(other_config, space.input_shape, space.num_classes)
    with pytest.raises(ConfigError) as err:
        LatencyTable.load(path, other, FAST)
    message = str(err.value)
    assert space.fingerprint in message and other.fingerprint in message and "rlnas latency build" in message


@pytest.mark.parametrize(
    ("change", "expected"),
    [({"threads": 2}, "threads"), ({"batch_size": 8}, "batch size")],
)
def test_table_for_other_threads_or_batch_is_refused(digits_table, tmp_path, change, expected):
    table, space = digits_table
    path = table.save(tmp_path / "t.json")
    with pytest.raises(ConfigError, match=expected) as err:
        LatencyTable.load(path, space, dataclasses.replace(FAST, **change))
    assert "rlnas latency build" in str(err.value)


def test_table_for_another_device_is_refused(digits_table, tmp_path):
    table, space = digits_table
    path = table.save(tmp_path / "t.json")
    data = json.loads(path.read_text())
    data["device_name"] = "Some Other CPU 9000"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="Some Other CPU 9000"):
        LatencyTable.load(path, space, FAST)
    data["device"] = "cuda"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="cuda"):
        LatencyTable.load(path, space, FAST)
    assert LatencyTable.load(path, space).device == "cuda"  # without a LatencyConfig only the space is checked


def test_prediction_is_a_lookup_that_builds_no_module(digits_table, monkeypatch):
    """After the first prediction a table neither re-enumerates the space nor builds a torch module."""
    import rlnas.latency.table as table_module

    table, space = digits_table
    rng = np.random.default_rng(5)
    archs = [space.sample(rng) for _ in range(200)]
    expected = [table.predict(a) for a in archs]

    def forbidden(*args, **kwargs):
        raise AssertionError("prediction built a module or enumerated the space")

    monkeypatch.setattr(torch.nn.Module, "__init__", forbidden)
    monkeypatch.setattr(table_module, "enumerate_layers", forbidden)
    assert [table.predict(a) for a in archs] == expected


def test_validate_reports_errors_and_rank_correlations(digits_table):
    table, space = digits_table
    result = validate(table, space, n=6, seed=0, rounds=1, progress=False)
    assert result.predicted.shape == result.measured.shape == result.flops.shape == (6,)
    assert np.all(result.measured > 0) and np.all(result.flops > 0)
    summary = result.summary()
    assert set(summary) >= {"mape_pct", "max_abs_pct", "kendall_tau", "spearman_rho", "flops_kendall_tau"}
    assert summary["max_abs_pct"] >= summary["mape_pct"] >= 0


def test_rank_correlations_match_known_values():
    x = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert kendall_tau(x, x) == pytest.approx(1.0)
    assert kendall_tau(x, x[::-1]) == pytest.approx(-1.0)
    assert spearman_rho(x, [2.0, 1.0, 4.0, 3.0, 5.0]) == pytest.approx(0.8)
    # scipy's tau-b with ties: kendalltau([1, 2, 2, 3], [1, 3, 2, 4]) = 0.9128709...
    assert kendall_tau([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(0.912870929, abs=1e-6)
    assert spearman_rho([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(0.948683298, abs=1e-6)


# ------------------------------------------------------------------------------------------ latency source


def _preset_with(latency: LatencyConfig):
    from rlnas.config import load_env_preset

    preset = load_env_preset("digits")
    return dataclasses.replace(preset, latency=latency)


def test_auto_uses_a_table_for_this_space_and_device_else_measures(digits_table, tmp_path, monkeypatch):
    table, space = digits_table
    monkeypatch.chdir(tmp_path)
    preset = _preset_with(FAST)
    assert latency_source(preset, space).name == "measured"
    table.save(default_table_path(preset.name, FAST))
    source = latency_source(preset, space)
    arch = space.uniform("conv3x3", 0.5)
    assert source.name == "table" and source(build_model(space, arch), arch) == table.predict(arch)
    other_batch = dataclasses.replace(FAST, batch_size=2)  # the table was built for batch 1: not this device setting
    assert latency_source(_preset_with(other_batch), space).name == "measured"


def test_a_named_table_must_exist_and_fit(digits_table, tmp_path):
    table, space = digits_table
    missing = _preset_with(dataclasses.replace(FAST, source="table", table=str(tmp_path / "none.json")))
    with pytest.raises(ConfigError, match=r"no table at .*none\.json.*rlnas latency build"):
        latency_source(missing, space)
    path = table.save(tmp_path / "t.json")
    other_threads = _preset_with(dataclasses.replace(FAST, source="table", table=str(path), threads=2))
    with pytest.raises(ConfigError, match="threads"):
        latency_source(other_threads, space)


def test_the_flops_source_scales_flops(digits_table):
    _, space = digits_table
    source = latency_source(_preset_with(dataclasses.replace(FAST, source="flops")), space)
    small, large = space.uniform("sep3x3", 0.25), space.uniform("conv3x3", 1.0)
    lat = {a: source(build_model(space, a), a) for a in (small, large)}
    flops = {a: count_flops(build_model(space, a), space.input_shape) for a in (small, large)}
    assert source.name == "flops" and lat[large] > lat[small] > 0
    assert lat[large] / lat[small] == pytest.approx(flops[large] / flops[small])
