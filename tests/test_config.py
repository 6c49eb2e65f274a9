"""Presets: every bad preset is refused with the offending key and what is allowed; shipped presets load."""

from __future__ import annotations

import copy
import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from rlnas.config import (
    AgentPreset,
    ConfigError,
    EnvPreset,
    PPOPreset,
    dump_yaml,
    load_agent_preset,
    load_env_preset,
    to_dict,
)
from rlnas.space.ops import OPERATORS

REPO = Path(__file__).resolve().parents[1]
DIGITS_YAML = REPO / "envs" / "digits.yaml"


@pytest.fixture
def digits_dict() -> dict:
    """envs/digits.yaml as a dict source (a dict has no file name, so it names itself)."""
    data = yaml.safe_load(DIGITS_YAML.read_text())
    data["name"] = "digits"
    return copy.deepcopy(data)


def error_of(data: dict) -> str:
    with pytest.raises(ConfigError) as info:
        load_env_preset(data)
    return str(info.value)


def test_the_unmodified_dict_loads(digits_dict):
    preset = load_env_preset(digits_dict)
    assert isinstance(preset, EnvPreset)
    assert preset.space.operators == tuple(digits_dict["space"]["operators"])
    assert preset.space.stages[1].width == digits_dict["space"]["stages"][1]["width"]
    assert all(isinstance(k, float) for k in preset.space.keep_ratios)


def test_unknown_operator_names_the_index_and_every_allowed_operator(digits_dict):
    digits_dict["space"]["operators"] = ["conv3x3", "conv7x7"]
    message = error_of(digits_dict)
    assert "space.operators[1]" in message
    assert "conv7x7" in message
    for name in OPERATORS:
        assert name in message


def test_empty_operator_list_names_the_key_and_the_choices(digits_dict):
    digits_dict["space"]["operators"] = []
    message = error_of(digits_dict)
    assert "space.operators" in message
    for name in OPERATORS:
        assert name in message


def test_duplicate_operator_is_refused(digits_dict):
    digits_dict["space"]["operators"] = ["skip", "conv3x3", "skip"]
    message = error_of(digits_dict)
    assert "space.operators" in message and "duplicate" in message


def test_empty_keep_ratios_names_the_key_and_the_range(digits_dict):
    digits_dict["space"]["keep_ratios"] = []
    message = error_of(digits_dict)
    assert "space.keep_ratios" in message and "(0, 1]" in message


@pytest.mark.parametrize("bad", [0, 0.0, 1.5, -0.25])
@pytest.mark.parametrize("index", [0, 2])
def test_keep_ratio_out_of_range_names_its_index(digits_dict, bad, index):
    ratios = [0.25, 0.5, 1.0]
    ratios[index] = bad
    digits_dict["space"]["keep_ratios"] = ratios
    message = error_of(digits_dict)
    assert f"space.keep_ratios[{index}]" in message
    assert str(bad) in message and "(0, 1]" in message


@pytest.mark.parametrize("width", [0, -8])
def test_non_positive_stage_width_names_the_stage(digits_dict, width):
    digits_dict["space"]["stages"][0]["width"] = width
    message = error_of(digits_dict)
    assert "space.stages[0].width" in message and str(width) in message and "positive" in message


def test_bad_stride_names_the_stage_and_the_choices(digits_dict):
    digits_dict["space"]["stages"][1]["stride"] = 3
    message = error_of(digits_dict)
    assert "space.stages[1].stride" in message and "1 or 2" in message


def test_unknown_top_level_key_lists_the_allowed_keys(digits_dict):
    digits_dict["optimiser"] = "adamw"
    message = error_of(digits_dict)
    assert "optimiser" in message
    for key in ("data", "space", "train", "reward", "latency", "evaluator", "seed"):
        assert key in message


def test_unknown_nested_key_is_named_with_its_path(digits_dict):
    digits_dict["train"]["epochs"] = 3
    message = error_of(digits_dict)
    assert "train.epochs" in message and "finetune_steps" in message


@pytest.mark.parametrize(
    ("path", "key"),
    [(("space",), "space"), (("train", "steps"), "train.steps"), (("reward", "target_ms"), "reward.target_ms")],
    ids=["space", "train.steps", "reward.target_ms (needed by the latency cost)"],
)
def test_missing_required_key_is_named(digits_dict, path, key):
    parent = digits_dict
    for part in path[:-1]:
        parent = parent[part]
    del parent[path[-1]]
    message = error_of(digits_dict)
    assert "missing" in message and key in message


@pytest.mark.parametrize(
    ("section", "field", "value", "key", "expected"),
    [
        ("train", "steps", "many", "train.steps", "int"),
        ("train", "steps", 20.5, "train.steps", "int"),
        ("train", "steps", True, "train.steps", "int"),
        ("train", "lr", "fast", "train.lr", "float"),
        ("data", "val_size", [300], "data.val_size", "int"),
        ("data", "name", 7, "data.name", "str"),
        ("space", "stages", {"layers": 2}, "space.stages", "list"),
    ],
)
def test_wrong_type_names_the_key_and_the_expected_type(digits_dict, section, field, value, key, expected):
    digits_dict[section][field] = value
    message = error_of(digits_dict)
    assert key in message and expected in message


def test_stage_that_is_not_a_mapping_is_named(digits_dict):
    digits_dict["space"]["stages"][1] = 24
    message = error_of(digits_dict)
    assert "space.stages[1]" in message and "mapping" in message


def test_bad_literal_lists_the_choices(digits_dict):
    digits_dict["reward"]["kind"] = "soft"
    message = error_of(digits_dict)
    assert "reward.kind" in message and "'soft'" in message
    assert "mnasnet" in message and "hard" in message


def test_bad_optimizer_lists_the_choices(digits_dict):
    digits_dict["train"]["optimizer"] = "adam"
    message = error_of(digits_dict)
    assert "train.optimizer" in message and "adamw" in message and "sgd" in message


@pytest.mark.parametrize(
    ("section", "field", "value", "key"),
    [
        ("train", "lr", 0, "train.lr"),
        ("train", "batch_size", 0, "train.batch_size"),
        ("train", "steps", -1, "train.steps"),
        ("data", "val_size", 0, "data.val_size"),
        ("reward", "target_ms", 0, "reward.target_ms"),
        ("latency", "repeats", 0, "latency.repeats"),
        ("latency", "device", "tpu", "latency.device"),
        ("train", "finetune_lr", -1.0, "train.finetune_lr"),
        ("latency", "batch_size", 0, "latency.batch_size"),
        ("latency", "warmup", -1, "latency.warmup"),
        ("latency", "statistic", "mean", "latency.statistic"),
        ("data", "image_size", 0, "data.image_size"),
    ],
)
def test_out_of_range_values_name_the_key(digits_dict, section, field, value, key):
    digits_dict[section][field] = value
    message = error_of(digits_dict)
    assert key in message and repr(value) in message


@pytest.mark.parametrize("subset", [0, -5])
def test_non_positive_train_subset_is_refused(digits_dict, subset):
    digits_dict["data"]["train_subset"] = subset
    assert "data.train_subset" in error_of(digits_dict)


def test_range_errors_from_a_file_name_the_file(tmp_path, digits_dict):
    digits_dict["train"]["lr"] = -1.0
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(digits_dict))
    with pytest.raises(ConfigError, match=re.escape(f"{path}: train.lr")):
        load_env_preset(path)


def test_a_stage_that_is_not_a_mapping_names_its_index_cleanly(digits_dict):
    digits_dict["space"]["stages"][1] = 24
    assert "space.stages[1]: expected a mapping" in error_of(digits_dict)


def test_errors_from_a_file_name_the_file_and_the_key(tmp_path, digits_dict):
    digits_dict["space"]["stages"][1]["widht"] = 24
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(digits_dict))
    with pytest.raises(ConfigError, match=re.escape(str(path))) as info:
        load_env_preset(path)
    assert "space.stages[1].widht" in str(info.value)


def test_a_file_that_is_not_a_mapping_is_refused(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_env_preset(path)


@pytest.mark.parametrize(("loader", "kind"), [(load_env_preset, "envs"), (load_agent_preset, "agents")])
def test_unknown_preset_name_lists_the_available_ones(loader, kind):
    with pytest.raises(ConfigError) as info:
        loader("no_such_preset")
    message = str(info.value)
    assert "no_such_preset" in message
    shipped = sorted(p.stem for p in (REPO / kind).glob("*.yaml"))
    assert shipped, f"no presets shipped in {kind}/"
    for name in shipped:
        assert name in message


def test_preset_loads_by_bare_name_and_by_path():
    by_name = load_env_preset("digits")
    by_path = load_env_preset(DIGITS_YAML)
    by_str_path = load_env_preset(str(DIGITS_YAML))
    assert by_name == by_path == by_str_path
    assert by_name.name == "digits"
    assert by_name.data.name == "digits"


def test_a_copied_preset_is_named_after_its_file(tmp_path):
    copy_path = tmp_path / "my_digits.yaml"
    copy_path.write_text(DIGITS_YAML.read_text())
    assert load_env_preset(copy_path).name == "my_digits"


def test_dump_and_reload_round_trips(tmp_path):
    preset = load_env_preset("digits")
    dump_yaml(preset, tmp_path / "resolved.yaml")
    assert load_env_preset(tmp_path / "resolved.yaml") == preset
    assert load_env_preset(to_dict(preset)) == preset


@pytest.mark.parametrize("path", sorted((REPO / "envs").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_env_preset_loads(path):
    preset = load_env_preset(path.stem)
    assert isinstance(preset, EnvPreset) and preset.name == path.stem
    assert preset == load_env_preset(path)


@pytest.mark.parametrize("path", sorted((REPO / "agents").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_agent_preset_loads(path):
    preset = load_agent_preset(path.stem)
    assert isinstance(preset, AgentPreset) and preset.name == path.stem


def test_the_shipped_ppo_preset_is_the_dataclass_defaults():
    """agents/ppo.yaml documents PPOPreset's defaults: a preset built from a dict runs the PPO that ships."""
    shipped = load_agent_preset(REPO / "agents" / "ppo.yaml")
    assert shipped == PPOPreset(name="ppo")
    assert load_agent_preset({"name": "ppo"}) == shipped
    written = yaml.safe_load((REPO / "agents" / "ppo.yaml").read_text())
    assert set(written) == {f.name for f in dataclasses.fields(PPOPreset)} - {"name"}  # every setting documented


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("n_epochs", 0),
        ("gamma", 0.0),
        ("gamma", 1.5),
        ("gae_lambda", -0.1),
        ("clip_range", 0.0),
        ("ent_coef", -0.01),
        ("rank_window", 0),
    ],
)
def test_agent_range_errors_name_the_key(key, value):
    with pytest.raises(ConfigError, match=rf"{key}: {value!r} is not allowed"):
        load_agent_preset({"name": "x", key: value})


def test_agent_preset_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"net_arch"):
        load_agent_preset({"name": "x", "net_arch": [64, 0]})
    with pytest.raises(ConfigError, match=r"algo.*ppo"):
        load_agent_preset({"name": "x", "algo": "a2c"})


def test_overrides_set_nested_keys_and_list_items(digits_dict):
    preset = load_env_preset(digits_dict, ["train.steps=7", "space.stages.1.width=32", "space.keep_ratios=[0.5, 1.0]"])
    assert preset.train.steps == 7 and preset.space.stages[1].width == 32 and preset.space.keep_ratios == (0.5, 1.0)
    assert digits_dict["train"]["steps"] != 7  # the caller's data is not modified


@pytest.mark.parametrize(
    ("override", "message"),
    [("train.steps", "expected KEY=VALUE"), ("space.stages.9.width=3", "space.stages has no item '9'"),
     ("train.steps=-1", "train.steps: -1 is not allowed"), ("train.stepz=3", "unknown key train.stepz")],
)  # fmt: skip
def test_bad_overrides_are_named(digits_dict, override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_env_preset(digits_dict, [override])
