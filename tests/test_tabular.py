"""The tabular evaluator: it returns the table's numbers, merges equivalent keys, and refuses bad tables clearly."""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from rlnas.config import ConfigError, load_env_preset, to_dict
from rlnas.envs.child_net import ChildNetEnv
from rlnas.envs.evaluators import space_for
from rlnas.envs.tabular import BenchmarkTable, TabularEvaluator
from rlnas.latency import count_flops
from rlnas.latency.build import build_table
from rlnas.latency.table import LatencyTable
from rlnas.pruning import build_model
from rlnas.space import Arch
from rlnas.training.data import DataError

MACRO_OPS = ("skip", "mbconv3_k3", "mbconv6_k5")  # codes 0, 1, 2 in NAS-Bench-Macro


def macro_arch(key: str) -> Arch:
    return Arch(tuple(MACRO_OPS[int(c)] for c in key), (1.0,) * len(key))


@pytest.fixture(scope="module")
def macro(macro_preset) -> TabularEvaluator:
    return TabularEvaluator(macro_preset)


@pytest.fixture(scope="module")
def macro_raw(macro_preset) -> dict:
    return json.loads(Path(macro_preset.table.path).read_text())


# ------------------------------------------------------------------------------------------ NAS-Bench-Macro


@pytest.mark.parametrize("key", ["22212220", "00000000", "11111221", "02012100"])
def test_returns_the_published_numbers(macro, macro_raw, key):
    result = macro.evaluate(macro_arch(key))
    record = macro_raw[key]
    assert result.status == "ok"
    assert result.accuracy == pytest.approx(record["mean_acc"] / 100)
    assert result.flops == record["flops"] and result.params == record["params"]
    assert result.latency_ms == 0.0  # the table has no latency, and says so rather than inventing one


def test_the_space_indexes_all_6561_keys(macro, macro_raw):
    assert macro.space.size == len(macro_raw) == 6561
    rng = np.random.default_rng(0)
    for _ in range(50):
        arch = macro.space.sample(rng)
        assert macro.key_of(arch) in macro_raw


def test_known_optimum_and_worst(macro):
    assert macro.evaluate(macro_arch("22212220")).accuracy == pytest.approx(0.93127, abs=1e-5)
    assert macro.evaluate(macro_arch("00000000")).accuracy == pytest.approx(0.4536, abs=1e-4)


def test_identity_equivalent_keys_share_one_record(macro):
    # Stage 2 is layers 2-4: "120" and "102" differ only in where the identity sits after the stage's first layer.
    a, b = macro.evaluate(macro_arch("00120000")), macro.evaluate(macro_arch("00102000"))
    assert a.record_key == b.record_key == "00102000"
    assert (a.accuracy, a.flops, a.params) == (b.accuracy, b.flops, b.params)
    assert a.arch != b.arch  # each evaluation keeps the architecture that was asked for
    # an identity at a stage's first (downsampling) layer is a projection, another network: another record
    c = macro.evaluate(macro_arch("00012000"))
    assert c.record_key == "00012000" and c.accuracy != a.accuracy


def test_equivalence_classes_match_the_benchmark(macro):
    assert len(set(macro.table.canonical.values())) == 3969  # distinct records in NAS-Bench-Macro


def test_the_spaces_equivalent_children_are_the_tables_shared_records(macro):
    records: dict[tuple, set] = {}  # the space's representative -> the table records of the children it stands for
    for key in macro.table.canonical:
        representative = macro.space.canonical_action(macro.space.encode(macro_arch(key)))
        records.setdefault(representative, set()).add(macro.table.canonical[key])
    assert len(records) == 3969 and all(len(r) == 1 for r in records.values())


def test_env_on_the_table_passes_sb3_check_and_rewards_accuracy(macro_preset, macro):
    env = ChildNetEnv(macro_preset, evaluator=macro)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sb3_check_env(env)
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step(macro.space.encode(macro_arch("22212220")))
    assert terminated and reward == pytest.approx(0.93127, abs=1e-5) == info["accuracy"]
    assert info["record_key"] == "22212202" and info["cost"] == pytest.approx(85.164544)


def test_flops_constrained_reward_on_the_table(macro_preset, macro):
    preset = load_env_preset(to_dict(macro_preset), ["reward.kind=mnasnet", "reward.target_mflops=50"])
    env = ChildNetEnv(preset, evaluator=macro)
    big = env.step(macro.space.encode(macro_arch("22222222")))[4]
    assert big["cost"] > 50 and big["exponent"] == -0.07
    assert big["reward"] == pytest.approx(big["accuracy"] * (big["cost"] / 50) ** -0.07)


# ------------------------------------------------------------------------------ latency from rlnas's source


@pytest.fixture(scope="module")
def synthetic_latency_table(synthetic_table_preset, tmp_path_factory) -> Path:
    """A latency table built (quickly, coarsely) for the synthetic table's space, at the preset's latency settings."""
    cfg = dataclasses.replace(synthetic_table_preset.latency, warmup=1, repeats=2)
    table = build_table(space_for(synthetic_table_preset), cfg, rounds=1, calibration=0, progress=False)
    return table.save(tmp_path_factory.mktemp("latency") / "synthetic.json")


def test_a_table_without_latency_takes_it_from_a_latency_table_of_the_space(
    synthetic_table_preset, synthetic_latency_table
):
    overrides = ["reward.kind=budget", "reward.target_ms=1.0", "latency.source=table"]
    preset = load_env_preset(to_dict(synthetic_table_preset), [*overrides, f"latency.table={synthetic_latency_table}"])
    evaluator = TabularEvaluator(preset)
    predictor = LatencyTable.load(synthetic_latency_table, evaluator.space)
    small, large = Arch(("skip",) * 4, (1.0,) * 4), Arch(("mbconv3_k3",) * 4, (1.0,) * 4)
    results = {arch: evaluator.evaluate(arch) for arch in (small, large)}
    for arch, result in results.items():
        assert result.latency_ms == pytest.approx(predictor.predict(arch)) and result.latency_source == "table"
    assert results[large].latency_ms > results[small].latency_ms
    assert evaluator.settings["latency_source"] == "table"  # the evaluation cache keys on where latency came from
    env = ChildNetEnv(preset, evaluator=evaluator)
    info = env.step(env.space.encode(large))[4]
    assert info["cost"] == pytest.approx(results[large].latency_ms) and info["target"] == 1.0


def test_a_table_without_latency_can_scale_flops_of_the_built_child(synthetic_table_preset):
    overrides = ["reward.kind=budget", "reward.target_ms=1.0", "latency.source=flops", "latency.repeats=2"]
    evaluator = TabularEvaluator(load_env_preset(to_dict(synthetic_table_preset), overrides))
    small, large = Arch(("skip",) * 4, (1.0,) * 4), Arch(("mbconv3_k3",) * 4, (1.0,) * 4)
    latency = {arch: evaluator.evaluate(arch).latency_ms for arch in (small, large)}
    flops = {arch: count_flops(build_model(evaluator.space, arch), evaluator.space.input_shape) for arch in latency}
    assert latency[small] > 0 and latency[large] / latency[small] == pytest.approx(flops[large] / flops[small])
    assert evaluator.evaluate(small).latency_source == "flops"


def test_a_table_without_latency_under_an_accuracy_reward_measures_nothing(synthetic_table_preset):
    evaluator = TabularEvaluator(synthetic_table_preset)
    result = evaluator.evaluate(Arch(("skip",) * 4, (1.0,) * 4))
    assert evaluator.latency is None and result.latency_ms == 0.0 and result.latency_source == ""


# ------------------------------------------------------------------------------------------- keep-ratio codes


def width_table_preset(tmp_path: Path, keep_codes: list[str] | None) -> dict:
    """A 2-layer space of conv3x3 or skip at keep-ratios 0.5 or 1.0, over a JSON table keyed ``<op><keep>-...``
    (operator codes c/s, keep codes h/f); accuracy grows with the index of the key, so every key has its own."""
    keys = ["-".join(pair) for pair in itertools.product(["ch", "cf", "sh", "sf"], repeat=2)]
    path = tmp_path / "width.json"
    path.write_text(json.dumps({k: {"acc": 50 + i, "flops": 1e6 * (i + 1), "params": i} for i, k in enumerate(keys)}))
    table = {"path": str(path), "codes": ["c", "s"], "separator": "-", "accuracy": "acc", "keep_codes": keep_codes}
    return {
        "name": "width",
        "data": {"name": "digits"},
        "space": {"stem_width": 4, "stages": [{"layers": 2, "width": 8}], "operators": ["conv3x3", "skip"],
                  "keep_ratios": [0.5, 1.0]},
        "train": {"steps": 0, "finetune_steps": 0},
        "evaluator": "tabular",
        "table": table,
        "reward": {"kind": "accuracy"},
    }  # fmt: skip


def test_a_table_keyed_by_operator_and_keep_ratio_codes(tmp_path):
    evaluator = TabularEvaluator(load_env_preset(width_table_preset(tmp_path, ["h", "f"])))
    arch = Arch(("conv3x3", "skip"), (0.5, 1.0))
    assert evaluator.key_of(arch) == "ch-sf"
    assert evaluator.evaluate(arch).accuracy == pytest.approx(0.53)  # "ch-sf" is the table's 4th key
    assert evaluator.evaluate(Arch(("skip", "conv3x3"), (1.0, 0.5))).accuracy == pytest.approx(0.62)  # "sf-ch"
    assert evaluator.evaluate(Arch(("conv3x3", "conv3x3"), (1.0, 1.0))).flops == 6_000_000  # "cf-cf"


@pytest.mark.parametrize(
    ("keep_codes", "message"),
    [(None, "a code per keep-ratio"), (["h"], r"one code per keep-ratio \(2\)"), (["h", "h"], "distinct codes")],
)
def test_keep_codes_must_name_every_keep_ratio_once(tmp_path, keep_codes, message):
    with pytest.raises(ConfigError, match=rf"table\.keep_codes: .*{message}"):
        load_env_preset(width_table_preset(tmp_path, keep_codes))


# --------------------------------------------------------------------------------------- format and errors


def test_csv_with_layer_columns(synthetic_table_preset):
    evaluator = TabularEvaluator(synthetic_table_preset)
    best = evaluator.evaluate(Arch(("mbconv3_k3",) * 4, (1.0,) * 4))
    assert evaluator.key_of(Arch(("mbconv3_k3",) * 4, (1.0,) * 4)) == "2222"
    assert best.accuracy == pytest.approx(0.86) and best.flops == 9_000_000
    assert len(evaluator.table) == 81 and len(set(evaluator.table.canonical.values())) == 81


def test_csv_with_a_key_column_and_custom_codes(tmp_path, synthetic_table_preset):
    path = tmp_path / "keyed.csv"
    path.write_text("key,acc,flops,params\n" + "".join(f"{k},{50 + i},{i},{i}\n" for i, k in enumerate(["ab", "ba"])))
    data = to_dict(synthetic_table_preset)
    data["space"]["stages"] = [{"layers": 2, "width": 8}]
    data["space"]["operators"] = ["skip", "conv3x3"]
    data["table"] |= {"path": str(path), "codes": ["a", "b"]}
    evaluator = TabularEvaluator(load_env_preset(data))
    assert evaluator.evaluate(Arch(("conv3x3", "skip"), (1.0, 1.0))).accuracy == pytest.approx(0.51)


def test_missing_table_names_the_path_the_source_and_the_fix(macro_preset, tmp_path):
    preset = dataclasses.replace(macro_preset, table=dataclasses.replace(macro_preset.table, path=str(tmp_path / "x")))
    with pytest.raises(DataError) as info:
        TabularEvaluator(preset)
    message = str(info.value)
    assert str(tmp_path / "x") in message and "xiusu/NAS-Bench-Macro" in message and "table.path" in message


def test_table_for_another_space_is_refused(synthetic_table_preset, tmp_path):
    path = tmp_path / "short.json"
    path.write_text(json.dumps({"012": {"mean_acc": 50, "flops": 1, "params": 1}}))
    preset = dataclasses.replace(
        synthetic_table_preset, table=dataclasses.replace(synthetic_table_preset.table, path=str(path))
    )
    with pytest.raises(DataError, match=r"keys look like '012'.*4 layers"):
        TabularEvaluator(preset)


def test_a_missing_metric_names_the_field(synthetic_table_preset):
    preset = dataclasses.replace(
        synthetic_table_preset, table=dataclasses.replace(synthetic_table_preset.table, accuracy="top1")
    )
    with pytest.raises(DataError, match=r"no field 'top1'.*acc"):
        TabularEvaluator(preset).evaluate(Arch(("skip",) * 4, (1.0,) * 4))


def test_a_key_the_table_lacks_is_named():
    table = BenchmarkTable({"00": {"acc": 1}}, "mini.json")
    with pytest.raises(KeyError, match=r"'01' is not in benchmark table mini.json"):
        table.lookup("01")


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("space.keep_ratios=[0.5, 1.0]", "table.keep_codes"),
        ("table=null", "table"),
        ("table.codes=['0', '1']", "table.codes"),
    ],
)
def test_bad_tabular_presets_are_refused(synthetic_table_preset, override, key):
    with pytest.raises(ConfigError, match=re.escape(key)):
        load_env_preset(to_dict(synthetic_table_preset), [override])
