"""Presets as data: dataclasses loaded from YAML and validated on load.

Every error names the offending key (``space.keep_ratios[2]``), what was found and what is allowed,
so a user can fix a preset without reading code.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from rlnas.errors import ConfigError
from rlnas.model_config import ModelConfig
from rlnas.preset_checks import shown, validate_agent, validate_env
from rlnas.preset_types import (
    MAX_IMAGE_SIZE,
    MAX_LAYERS,
    MAX_WIDTH,
    STRATEGIES,
    AgentPreset,
    DataConfig,
    EnvPreset,
    EvolutionPreset,
    LatencyConfig,
    PPOPreset,
    RandomPreset,
    RewardConfig,
    SpaceConfig,
    StageConfig,
    SupernetConfig,
    TableConfig,
    TrainConfig,
    UniformPreset,
)
from rlnas.presets import resolve_preset

__all__ = [
    "MAX_IMAGE_SIZE",
    "MAX_LAYERS",
    "MAX_WIDTH",
    "STRATEGIES",
    "AgentPreset",
    "ConfigError",
    "DataConfig",
    "EnvPreset",
    "EvolutionPreset",
    "LatencyConfig",
    "ModelConfig",
    "PPOPreset",
    "RandomPreset",
    "RewardConfig",
    "SpaceConfig",
    "StageConfig",
    "SupernetConfig",
    "TableConfig",
    "TrainConfig",
    "UniformPreset",
    "dump_yaml",
    "load_agent_preset",
    "load_env_preset",
    "read_yaml",
    "to_dict",
]

T = TypeVar("T")


# ------------------------------------------------------------------------------------------------- loading


def load_env_preset(source: str | Path | dict, overrides: Sequence[str] = ()) -> EnvPreset:
    """Load and validate an environment preset from a path, a bare preset name, or a dict.

    ``overrides`` are ``dotted.key=value`` strings applied before validation (values are parsed as YAML;
    list items by index: ``space.stages.0.width=32``).
    """
    return _load(lambda data: EnvPreset, source, "envs", validate_env, overrides)


def load_agent_preset(source: str | Path | dict, overrides: Sequence[str] = ()) -> AgentPreset:
    """Load and validate a controller preset from a path, a bare preset name, or a dict (``overrides`` as above)."""
    return _load(_strategy_class, source, "agents", validate_agent, overrides)


def _strategy_class(data: dict) -> type:
    algo = data.get("algo", "ppo")
    if algo not in STRATEGIES:
        raise ConfigError(f"algo: {algo!r} is not allowed; choose one of {', '.join(STRATEGIES)}")
    return STRATEGIES[algo]


def to_dict(preset: Any) -> dict:
    """The preset as plain YAML-ready data (tuples become lists)."""
    return _plain(dataclasses.asdict(preset))


def dump_yaml(preset: Any, path: Path) -> None:
    """Write the resolved preset so a run can be reproduced from its folder alone."""
    path.write_text(yaml.safe_dump(to_dict(preset), sort_keys=False))


def _load(
    select: Callable[[dict], type[T]],
    source: str | Path | dict,
    kind: str,
    validate: Callable[[T], None],
    overrides: Sequence[str] = (),
) -> T:
    if isinstance(source, dict):
        data, where = copy.deepcopy(source), "<dict>"
    else:
        path = resolve_preset(source, kind)
        where = str(path)
        data = read_yaml(path)
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a mapping of keys at the top level, found {type(data).__name__}")
        data.setdefault("name", path.stem)
    for override in overrides:
        _apply_override(data, override, where)
    try:
        preset = _build(select(data), data, "")
        validate(preset)
        return preset
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


def _apply_override(data: dict, override: str, where: str) -> None:
    key, sep, text = override.partition("=")
    context = f"{where}: override {shown(override)}"
    if not sep or not key.strip():
        raise ConfigError(f"{context}: expected KEY=VALUE, e.g. train.steps=50")
    parts, node = key.strip().split("."), data
    for depth, part in enumerate(parts):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            index: Any = int(part)
        elif isinstance(node, dict):
            index = part
        else:
            raise ConfigError(f"{context}: {'.'.join(parts[:depth])} has no item {shown(part)}")
        if depth == len(parts) - 1:
            node[index] = _parse_yaml(text, f"{context}: the value is not valid YAML")
            return
        if isinstance(node, dict) and part not in node:
            node[part] = {}
        node = node[index]


def read_yaml(path: Path) -> Any:
    """The YAML document in ``path``; a one-line :class:`ConfigError` naming the file and the line if it is not YAML."""
    try:
        text = path.read_text()
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not a YAML text file ({err.reason} at byte {err.start})") from None
    return _parse_yaml(text, f"{path}: not valid YAML")


def _parse_yaml(text: str, context: str) -> Any:
    """``yaml.safe_load(text)``; PyYAML's error on one line after ``context``: the problem, line and column."""
    try:
        return yaml.safe_load(text)
    except RecursionError:
        raise ConfigError(f"{context}: nested too deeply") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = " ".join(f"{getattr(err, 'problem', None) or err}{where}".split())
        raise ConfigError(f"{context}: {problem}") from None


def _build(cls: type[T], data: Any, prefix: str) -> T:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'preset'}: expected a mapping, found {shown(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(map(str, set(data) - set(fields)))
    if unknown:
        name = unknown[0] if unknown[0].isprintable() else repr(unknown[0])
        raise ConfigError(f"unknown key {prefix}{name}; allowed keys here: {', '.join(fields)}")
    kwargs = {}
    for name, f in fields.items():
        key = f"{prefix}{name}"
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"missing required key {key}")
            continue
        kwargs[name] = _coerce(hints[name], data[name], key)
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, f"{key}.")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(inner, value, key)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}: {shown(value)} is not allowed; choose one of {', '.join(map(str, args))}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, found {shown(value)}")
        return tuple(_coerce(args[0], v, f"{key}[{i}]") for i, v in enumerate(value))
    if tp is float and not isinstance(value, bool) and isinstance(value, int | float | str):
        return _finite(value, key)
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp in (str, bool) and isinstance(value, tp):
        return value
    raise ConfigError(f"{key}: expected {getattr(tp, '__name__', tp)}, found {shown(value)}")


def _finite(value: float | str, key: str) -> float:
    """``value`` as a finite float; numeric strings count, as YAML 1.1 reads ``1e-3`` (no dot) as a string."""
    try:
        number = float(value)
    except (ValueError, OverflowError):
        raise ConfigError(f"{key}: expected float, found {shown(value)}") from None
    if not math.isfinite(number):
        raise ConfigError(f"{key}: {shown(value)} is not allowed; expected a finite number")
    return number


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
