"""Presets as data: dataclasses loaded from YAML and validated on load.

Every error names the offending key (``space.keep_ratios[2]``), what was found and what is allowed,
so a user can fix a preset without reading code.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import reprlib
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from rlnas.errors import ConfigError
from rlnas.model_config import ModelConfig, validate_model
from rlnas.presets import resolve_preset
from rlnas.reward_function import import_reward_function

T = TypeVar("T")


MAX_WIDTH = 4096
"""The most channels a stem or stage may have (wider layers do not fit in memory on a single device)."""
MAX_LAYERS = 64
"""The most searchable layers a stage may have."""
MAX_IMAGE_SIZE = 1024
"""The largest side ``data.image_size`` may resize images to."""


# ----------------------------------------------------------------------------------------------- env preset


@dataclass(frozen=True)
class StageConfig:
    """A stage: ``layers`` searchable layers producing ``width`` channels; the first one has ``stride``."""

    layers: int
    width: int
    stride: int = 1


@dataclass(frozen=True)
class SpaceConfig:
    """The searchable part of the child: a fixed stem, searchable stages, then pooling and a classifier."""

    stem_width: int
    stages: tuple[StageConfig, ...]
    operators: tuple[str, ...]
    keep_ratios: tuple[float, ...]
    stem_stride: int = 1


@dataclass(frozen=True)
class DataConfig:
    """Which data set, where it lives, and how the validation split is carved from the training set."""

    name: str
    root: str | None = None
    download: bool = False
    val_size: int = 5000
    train_subset: int | None = None
    split_seed: int = 0
    image_size: int | None = None


@dataclass(frozen=True)
class TrainConfig:
    """The per-child budget: train the full-width child, prune it, then fine-tune the pruned one."""

    steps: int
    finetune_steps: int
    batch_size: int = 128
    lr: float = 3e-3
    finetune_lr: float = 1e-3
    weight_decay: float = 1e-4
    optimizer: Literal["adamw", "sgd"] = "adamw"
    recalibration_batches: int = 10
    eval_batch_size: int = 1000
    threads: int | None = None


@dataclass(frozen=True)
class LatencyConfig:
    """The target device (type, thread count, batch size) and where a child's latency comes from.

    ``statistic``: how ``repeats`` timed calls (after ``warmup`` untimed ones) become one latency: ``min`` (the
    default: the least-disturbed call, which repeats within a few percent on a shared machine where the median
    drifts by tens of percent; see BENCHMARKS.md) or ``median``.

    ``source``: ``measured`` (each child timed end to end as above),
    ``table`` (predicted from a lookup table built by ``rlnas latency build``; ``table`` names the file, default
    ``runs/latency/{preset}__{device}__t{threads}__b{batch}.json``), ``flops`` (FLOPs times a milliseconds-per-FLOP
    constant measured once on the space's full-width reference child), or ``auto``: ``table`` when a table for
    this space and device exists, else ``measured``.
    """

    device: str = "cpu"
    threads: int = 1
    batch_size: int = 1
    warmup: int = 10
    repeats: int = 30
    statistic: Literal["min", "median"] = "min"
    source: Literal["auto", "measured", "table", "flops"] = "auto"
    table: str | None = None


@dataclass(frozen=True)
class RewardConfig:
    """How accuracy is traded against cost (see :mod:`rlnas.envs.reward` for the formulas).

    ``kind``: ``budget`` (the default: the most accurate child with cost <= target is sought; a child within the
    target loses ``slack`` x the fraction of the target it leaves unused, one over it ``penalty`` x its relative
    overshoot, and with ``infeasible: below`` 1 more, which ranks it below every child within the target;
    ``slack = penalty`` is TuNAS's absolute-value reward), ``mnasnet`` (soft,
    ``acc * (cost / target) ** w``), ``hard`` (alpha=0, beta=-1), ``linear``
    (``acc - linear_lambda * cost / target``), ``amc`` (``-(1 - acc) * ln(FLOPs)``), ``accuracy``, or ``custom``
    (``function: "module:name"`` called with accuracy, latency_ms, flops, cost, target; returns the reward).
    ``cost``: ``latency`` (target ``target_ms``) or ``flops`` (target ``target_mflops``).
    """

    target_ms: float | None = None
    kind: Literal["budget", "mnasnet", "hard", "linear", "amc", "accuracy", "custom"] = "budget"
    cost: Literal["latency", "flops"] = "latency"
    target_mflops: float | None = None
    alpha: float = -0.07
    beta: float = -0.07
    linear_lambda: float = 0.1
    penalty: float = 0.1
    slack: float = 0.0
    infeasible: Literal["graded", "below"] = "graded"
    function: str | None = None
    failure_reward: float = 0.0

    @property
    def latency_target(self) -> float | None:
        """The latency target in ms when the reward uses one (it is then part of the observation)."""
        return self.target_ms if self.kind not in ("accuracy", "amc") and self.cost == "latency" else None


@dataclass(frozen=True)
class TableConfig:
    """A table of published results for the ``tabular`` evaluator (format: :mod:`rlnas.envs.tabular`).

    ``path`` (``~`` and ``$VARS`` expanded; relative to the current directory) is a JSON object or a CSV file.
    ``codes[i]`` is how the table writes ``space.operators[i]`` (default: its index); ``keep_codes[j]`` how it
    writes ``space.keep_ratios[j]`` (null: the space has one keep-ratio and keys carry none). A layer's code is
    its operator's code followed by its keep-ratio's; a child's key joins its layers' codes with ``separator``.
    Metric fields are named by ``accuracy``, ``flops``, ``params`` and ``latency_ms`` (null: the table has
    none; a reward that needs latency then takes it from the preset's ``latency`` source, e.g. a latency table
    built for the space); ``accuracy_scale`` turns the table's accuracy into [0, 1].
    ``merge_identical``: keys whose records are identical in every field are one network (one record).
    """

    path: str
    codes: tuple[str, ...] | None = None
    keep_codes: tuple[str, ...] | None = None
    separator: str = ""
    accuracy: str = "mean_acc"
    accuracy_scale: float = 100.0
    flops: str | None = "flops"
    params: str | None = "params"
    latency_ms: str | None = None
    merge_identical: bool = True
    source: str = ""


@dataclass(frozen=True)
class SupernetConfig:
    """The weight-sharing supernet (``evaluator: supernet``; :mod:`rlnas.training.supernet`).

    Training: ``steps`` single-path steps of ``batch_size`` with ``optimizer``/``lr`` (cosine schedule);
    ``sampling`` picks each step's paths (``uniform``: one uniformly random path; ``sandwich``: the
    widest, the narrowest and one random path, gradients summed); ``distill`` (sandwich only; on in
    ``fashion_mnist``, off when absent so older resolved configs keep their training): in-place distillation,
    the widest path learns the true labels and the step's other paths its detached soft predictions;
    ``widest_warmup`` (0 when absent): the fraction of ``steps`` that comes first and trains every path at full
    width (random operators, true labels) before ``sampling`` takes over; the
    channel importance order (L1) is re-ranked every ``resort_every`` steps.
    Evaluation of a child: BatchNorm statistics re-estimated on
    ``recalibration_batches`` training batches of ``recalibration_batch_size`` (null: ``batch_size``; a few
    large batches give the same statistics as many small ones at a fraction of the dispatch cost), then
    ``finetune_steps`` at ``finetune_lr``,
    then accuracy on the first ``val_size`` examples of the (seeded, fixed) validation split (null: all of it).
    """

    steps: int = 1000
    batch_size: int = 64
    lr: float = 1e-2
    weight_decay: float = 1e-4
    optimizer: Literal["adamw", "sgd"] = "adamw"
    sampling: Literal["uniform", "sandwich"] = "sandwich"
    distill: bool = False
    widest_warmup: float = 0.0
    resort_every: int = 50
    recalibration_batches: int = 10
    recalibration_batch_size: int | None = None
    finetune_steps: int = 0
    finetune_lr: float = 1e-3
    val_size: int | None = None

    @property
    def recalibration_batch(self) -> int:
        """The batch size BatchNorm recalibration uses."""
        return self.recalibration_batch_size or self.batch_size


@dataclass(frozen=True)
class EnvPreset:
    """Everything an environment needs: data, search space, child budget, latency and reward.

    A prune preset has a ``model`` section (:class:`~rlnas.model_config.ModelConfig`) instead of ``space``.
    """

    name: str
    data: DataConfig
    space: SpaceConfig | None = field(default=None, kw_only=True)
    train: TrainConfig
    reward: RewardConfig
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    evaluator: Literal["scratch", "tabular", "supernet"] = "scratch"
    table: TableConfig | None = None
    supernet: SupernetConfig = field(default_factory=SupernetConfig)
    seed: int = 0
    model: ModelConfig | None = None


# --------------------------------------------------------------------------------------------- agent preset


@dataclass(frozen=True)
class PPOPreset:
    """PPO hyperparameters (stable-baselines3 names), tuned for short, expensive searches.

    The defaults are the shipped settings (``agents/ppo.yaml`` documents them; docs/defaults.md says how each
    was chosen). ``repeated_children: redraw`` and ``virtual_rollouts`` are joint-factorisation options: a
    ``sequential`` preset sets ``repeated_children`` (``neutral`` or ``reward``) and ``virtual_rollouts: 0``.

    ``reward_transform`` (``rank``, ``log_rank`` or ``none``), ``repeated_children`` and ``rank_window`` (rank
    among the last this many first visits; None: all) shape what the learner sees
    (:mod:`rlnas.agents.reward_shaping`); ``repeated_children: redraw`` also makes the policy draw again when it
    samples a child already evaluated (joint factorisation only, :mod:`rlnas.agents.policy`).
    ``factorisation``: ``joint`` (one step per child, independent per-dimension choices) or ``sequential`` (one
    decision per step, :mod:`rlnas.agents.sequential`). ``n_steps`` and ``batch_size`` count children either way.
    ``ent_half_life``: the entropy coefficient halves every this many children (None: constant).
    ``virtual_rollouts``: after each real rollout, this many rollouts answered by a reward model of the children
    evaluated so far, once its leave-one-out R^2 reaches ``surrogate_min_r2`` on at least
    ``surrogate_min_children`` children (DyNA-PPO, :mod:`rlnas.agents.dyna`; 0: off; joint factorisation only);
    an unseen child earns the predicted reward plus ``surrogate_exploration`` standard deviations of it.
    """

    name: str
    algo: Literal["ppo"] = "ppo"
    n_steps: int = 8
    batch_size: int = 8
    n_epochs: int = 10
    learning_rate: float = 3e-2
    gamma: float = 1.0
    gae_lambda: float = 1.0
    clip_range: float = 0.5
    ent_coef: float = 0.03
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    net_arch: tuple[int, ...] = ()
    reward_transform: Literal["rank", "log_rank", "none"] = "log_rank"
    repeated_children: Literal["neutral", "reward", "redraw"] = "redraw"
    rank_window: int | None = None
    factorisation: Literal["joint", "sequential"] = "joint"
    ent_half_life: float | None = None
    virtual_rollouts: int = 4
    surrogate_min_r2: float = 0.3
    surrogate_min_children: int = 16
    surrogate_exploration: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class EvolutionPreset:
    """Regularized evolution (Real et al., 2019): tournament of ``sample_size`` from a population, mutate one
    layer choice of the winner, retire the oldest member. The first ``population_size`` children are random."""

    name: str
    algo: Literal["evolution"] = "evolution"
    population_size: int = 20
    sample_size: int = 5
    seed: int = 0


@dataclass(frozen=True)
class RandomPreset:
    """Random search: every child is drawn uniformly from the space."""

    name: str
    algo: Literal["random"] = "random"
    seed: int = 0


@dataclass(frozen=True)
class UniformPreset:
    """The uniform space members: every layer the same operator and keep-ratio, in the space's order."""

    name: str
    algo: Literal["uniform"] = "uniform"
    seed: int = 0


AgentPreset = PPOPreset | EvolutionPreset | RandomPreset | UniformPreset
"""A search strategy's preset; ``algo`` in the YAML file says which."""
STRATEGIES: dict[str, type] = {"ppo": PPOPreset, "evolution": EvolutionPreset, "random": RandomPreset,
                               "uniform": UniformPreset}  # fmt: skip


# ------------------------------------------------------------------------------------------------- loading


def load_env_preset(source: str | Path | dict, overrides: Sequence[str] = ()) -> EnvPreset:
    """Load and validate an environment preset from a path, a bare preset name, or a dict.

    ``overrides`` are ``dotted.key=value`` strings applied before validation (values are parsed as YAML;
    list items by index: ``space.stages.0.width=32``).
    """
    return _load(lambda data: EnvPreset, source, "envs", _validate_env, overrides)


def load_agent_preset(source: str | Path | dict, overrides: Sequence[str] = ()) -> AgentPreset:
    """Load and validate a controller preset from a path, a bare preset name, or a dict (``overrides`` as above)."""
    return _load(_strategy_class, source, "agents", _validate_agent, overrides)


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
    context = f"{where}: override {_shown(override)}"
    if not sep or not key.strip():
        raise ConfigError(f"{context}: expected KEY=VALUE, e.g. train.steps=50")
    parts, node = key.strip().split("."), data
    for depth, part in enumerate(parts):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            index: Any = int(part)
        elif isinstance(node, dict):
            index = part
        else:
            raise ConfigError(f"{context}: {'.'.join(parts[:depth])} has no item {_shown(part)}")
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


def _shown(value: Any) -> str:
    """``repr(value)``, shortened for messages (a value may be long, deeply nested or self-referencing)."""
    return _REPR.repr(value)


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 80
_REPR.maxlevel = 3


def _build(cls: type[T], data: Any, prefix: str) -> T:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'preset'}: expected a mapping, found {_shown(data)}")
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
            raise ConfigError(f"{key}: {_shown(value)} is not allowed; choose one of {', '.join(map(str, args))}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, found {_shown(value)}")
        return tuple(_coerce(args[0], v, f"{key}[{i}]") for i, v in enumerate(value))
    if tp is float and not isinstance(value, bool) and isinstance(value, int | float | str):
        return _finite(value, key)
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp in (str, bool) and isinstance(value, tp):
        return value
    raise ConfigError(f"{key}: expected {getattr(tp, '__name__', tp)}, found {_shown(value)}")


def _finite(value: float | str, key: str) -> float:
    """``value`` as a finite float; numeric strings count, as YAML 1.1 reads ``1e-3`` (no dot) as a string."""
    try:
        number = float(value)
    except (ValueError, OverflowError):
        raise ConfigError(f"{key}: expected float, found {_shown(value)}") from None
    if not math.isfinite(number):
        raise ConfigError(f"{key}: {_shown(value)} is not allowed; expected a finite number")
    return number


def _check(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {_shown(value)} is not allowed; expected {allowed}")


def _validate_env(p: EnvPreset) -> None:
    if p.model is not None:
        _check(p.space is None, "space", "...", "no space section with a model section (the model's groups are pruned)")
        validate_model(p.model, p.latency.source)
    else:
        if p.space is None:
            raise ConfigError("missing required key space (or give a model section: a model to prune)")
        _validate_space(p.space)
    _validate_rest(p)


def _validate_space(s: SpaceConfig) -> None:
    from rlnas.space.ops import OPERATORS

    channels = f"a positive number of channels, at most {MAX_WIDTH}"
    _check(0 < s.stem_width <= MAX_WIDTH, "space.stem_width", s.stem_width, channels)
    _check(s.stem_stride in (1, 2), "space.stem_stride", s.stem_stride, "1 or 2")
    _check(len(s.stages) > 0, "space.stages", [], "at least one stage")
    for i, st in enumerate(s.stages):
        layers = f"a positive number of layers, at most {MAX_LAYERS}"
        _check(0 < st.layers <= MAX_LAYERS, f"space.stages[{i}].layers", st.layers, layers)
        _check(0 < st.width <= MAX_WIDTH, f"space.stages[{i}].width", st.width, channels)
        _check(st.stride in (1, 2), f"space.stages[{i}].stride", st.stride, "1 or 2")
    _check(len(s.operators) > 0, "space.operators", [], f"a non-empty list from: {', '.join(OPERATORS)}")
    for i, op in enumerate(s.operators):
        _check(op in OPERATORS, f"space.operators[{i}]", op, f"one of: {', '.join(OPERATORS)}")
    _check(len(set(s.operators)) == len(s.operators), "space.operators", list(s.operators), "no duplicates")
    _check(len(s.keep_ratios) > 0, "space.keep_ratios", [], "a non-empty list of ratios in (0, 1]")
    for i, k in enumerate(s.keep_ratios):
        _check(0 < k <= 1, f"space.keep_ratios[{i}]", k, "a ratio in (0, 1], e.g. 0.25, 0.5, 1.0")
    _check(len(set(s.keep_ratios)) == len(s.keep_ratios), "space.keep_ratios", list(s.keep_ratios), "no duplicates")


def _validate_rest(p: EnvPreset) -> None:
    t = p.train
    _check(t.steps >= 0, "train.steps", t.steps, "a non-negative number of optimizer steps")
    _check(t.finetune_steps >= 0, "train.finetune_steps", t.finetune_steps, "a non-negative number of steps")
    _check(t.batch_size > 0, "train.batch_size", t.batch_size, "a positive integer")
    _check(t.lr > 0, "train.lr", t.lr, "a positive learning rate")
    _check(t.finetune_lr > 0, "train.finetune_lr", t.finetune_lr, "a positive learning rate")
    _check(t.threads is None or t.threads > 0, "train.threads", t.threads, "a positive number of threads or null")
    d = p.data
    _check(d.val_size > 0, "data.val_size", d.val_size, "a positive number of examples")
    _check(d.train_subset is None or d.train_subset > 0, "data.train_subset", d.train_subset, "positive or null")
    side = f"a positive side of at most {MAX_IMAGE_SIZE} pixels, or null"
    _check(d.image_size is None or 0 < d.image_size <= MAX_IMAGE_SIZE, "data.image_size", d.image_size, side)
    _validate_reward(p.reward)
    _validate_table(p)
    _validate_supernet(p.supernet)
    lat = p.latency
    _check(lat.repeats > 0, "latency.repeats", lat.repeats, "a positive integer")
    _check(lat.warmup >= 0, "latency.warmup", lat.warmup, "a non-negative integer")
    _check(lat.threads > 0, "latency.threads", lat.threads, "a positive integer")
    _check(lat.batch_size > 0, "latency.batch_size", lat.batch_size, "a positive integer")
    _check(lat.device.split(":")[0] in ("cpu", "cuda"), "latency.device", lat.device, "cpu or cuda")
    _check(
        lat.device.startswith("cpu") or lat.source == "table" or _cuda_available(), "latency.device", lat.device,
        "cpu on this machine (torch sees no CUDA device), or latency.source: table with a table built on that device",
    )  # fmt: skip


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _validate_reward(r: RewardConfig) -> None:
    needed = r.kind not in ("accuracy", "amc")
    for key, value, cost, unit in (
        ("target_ms", r.target_ms, "latency", "ms"),
        ("target_mflops", r.target_mflops, "flops", "MFLOPs"),
    ):
        if value is None and needed and r.cost == cost:
            raise ConfigError(
                f"missing required key reward.{key}: reward.kind {r.kind} with reward.cost {cost} needs a target "
                f"in {unit} (or use reward.kind: accuracy)"
            )
        _check(value is None or value > 0, f"reward.{key}", value, f"a positive target in {unit}")
    _check(r.penalty > 0, "reward.penalty", r.penalty, "a positive penalty per unit of relative overshoot")
    _check(r.slack >= 0, "reward.slack", r.slack, "a non-negative weight per unit of the target left unused")
    _check(r.kind != "custom" or bool(r.function), "reward.function", r.function, "'module:function' for kind custom")
    if r.kind == "custom":  # a function named for another kind is not imported: importing runs its module's code
        try:
            import_reward_function(r.function)
        except Exception as err:  # importing runs the module's code, which may fail in any way
            problem = " ".join(f"{type(err).__name__}: {err}".split())
            raise ConfigError(f"reward.function: {r.function!r} cannot be imported ({problem})") from None


def _validate_table(p: EnvPreset) -> None:
    if p.evaluator != "tabular":
        _check(p.table is None, "table", "...", "no table section unless evaluator is tabular")
        return
    _check(p.table is not None, "table", None, "a table section (path, codes, metric names) for evaluator tabular")
    t, ops = p.table, p.space.operators
    if t.codes is not None:
        _check(len(t.codes) == len(ops), "table.codes", list(t.codes), f"one code per operator ({len(ops)})")
        _check(len(set(t.codes)) == len(t.codes), "table.codes", list(t.codes), "distinct codes")
    keeps = p.space.keep_ratios
    if t.keep_codes is None:
        one_keep = "a code per keep-ratio (keys without one need space.keep_ratios: [1.0])"
        _check(len(keeps) == 1, "table.keep_codes", None, one_keep)
    else:
        n = len(keeps)
        _check(len(t.keep_codes) == n, "table.keep_codes", list(t.keep_codes), f"one code per keep-ratio ({n})")
        _check(len(set(t.keep_codes)) == n, "table.keep_codes", list(t.keep_codes), "distinct codes")
    _check(t.accuracy_scale > 0, "table.accuracy_scale", t.accuracy_scale, "a positive number (100 for percent)")
    _check(
        t.flops is not None or p.reward.cost != "flops", "table.flops", None, "a FLOPs column for reward.cost: flops"
    )


def _validate_supernet(s: SupernetConfig) -> None:
    _check(s.steps > 0, "supernet.steps", s.steps, "a positive number of training steps")
    _check(s.batch_size > 0, "supernet.batch_size", s.batch_size, "a positive integer")
    _check(s.lr > 0, "supernet.lr", s.lr, "a positive learning rate")
    _check(s.weight_decay >= 0, "supernet.weight_decay", s.weight_decay, "a non-negative number")
    _check(
        not s.distill or s.sampling == "sandwich",
        "supernet.distill", s.distill,
        "false with supernet.sampling uniform (set supernet.distill=false: the sandwich's widest path is the teacher)",
    )  # fmt: skip
    _check(
        0 <= s.widest_warmup < 1, "supernet.widest_warmup", s.widest_warmup,
        "a fraction of supernet.steps in [0, 1) (the rest trains narrower paths)",
    )  # fmt: skip
    _check(s.resort_every > 0, "supernet.resort_every", s.resort_every, "a positive number of steps")
    _check(s.recalibration_batches >= 0, "supernet.recalibration_batches", s.recalibration_batches, "0 or more")
    _check(
        s.recalibration_batch_size is None or s.recalibration_batch_size > 0,
        "supernet.recalibration_batch_size", s.recalibration_batch_size, "a positive integer or null (batch_size)",
    )  # fmt: skip
    _check(s.finetune_steps >= 0, "supernet.finetune_steps", s.finetune_steps, "a non-negative number of steps")
    _check(s.finetune_lr > 0, "supernet.finetune_lr", s.finetune_lr, "a positive learning rate")
    _check(s.val_size is None or s.val_size > 0, "supernet.val_size", s.val_size, "a positive number or null (all)")


def _validate_agent(p: AgentPreset) -> None:
    if isinstance(p, EvolutionPreset):
        _check(p.population_size >= 2, "population_size", p.population_size, "at least 2")
        _check(1 <= p.sample_size <= p.population_size, "sample_size", p.sample_size, "1 .. population_size")
    if not isinstance(p, PPOPreset):
        return
    _check(p.n_steps >= 1, "n_steps", p.n_steps, "a positive integer")
    _check(p.batch_size >= 1, "batch_size", p.batch_size, "a positive integer")
    _check(p.n_epochs >= 1, "n_epochs", p.n_epochs, "a positive integer")
    _check(p.learning_rate > 0, "learning_rate", p.learning_rate, "a positive number")
    _check(0 < p.gamma <= 1, "gamma", p.gamma, "a discount in (0, 1]")
    _check(0 <= p.gae_lambda <= 1, "gae_lambda", p.gae_lambda, "a value in [0, 1]")
    _check(p.clip_range > 0, "clip_range", p.clip_range, "a positive number, e.g. 0.2")
    _check(p.ent_coef >= 0, "ent_coef", p.ent_coef, "a non-negative number")
    _check(p.vf_coef >= 0, "vf_coef", p.vf_coef, "a non-negative number")
    _check(p.max_grad_norm > 0, "max_grad_norm", p.max_grad_norm, "a positive number")
    _check(all(w > 0 for w in p.net_arch), "net_arch", list(p.net_arch), "positive layer sizes")
    _check(p.rank_window is None or p.rank_window >= 1, "rank_window", p.rank_window, "a positive number or null")
    half_life = p.ent_half_life
    _check(half_life is None or half_life > 0, "ent_half_life", half_life, "a positive number of children or null")
    _check(p.virtual_rollouts >= 0, "virtual_rollouts", p.virtual_rollouts, "0 (off) or a positive integer")
    _check(
        p.virtual_rollouts == 0 or p.factorisation == "joint",
        "virtual_rollouts",
        p.virtual_rollouts,
        "0 with factorisation: sequential (virtual rollouts need one-step episodes: use factorisation: joint)",
    )
    _check(
        p.repeated_children != "redraw" or p.factorisation == "joint",
        "repeated_children",
        p.repeated_children,
        "neutral or reward with factorisation: sequential (redraw re-samples whole children: use factorisation: joint)",
    )
    _check(p.surrogate_min_r2 <= 1, "surrogate_min_r2", p.surrogate_min_r2, "an R^2 of at most 1")
    _check(p.surrogate_exploration >= 0, "surrogate_exploration", p.surrogate_exploration, "a non-negative number")
    _check(p.surrogate_min_children >= 3, "surrogate_min_children", p.surrogate_min_children, "at least 3")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
