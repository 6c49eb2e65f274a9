"""A per-device latency lookup table: time every distinct pruned layer once, then predict a child by summing.

**What is listed.** :func:`enumerate_layers` walks the space slot by slot. For every searchable position,
operator, keep-ratio and every input width the previous (pruned) layers can produce, it builds that single
operator at full width (:data:`rlnas.space.ops.OPERATORS`) and prunes it with the very rule
:func:`rlnas.pruning.prune_child` applies to that layer (``rlnas.pruning.prune.prune_layer``), reading the
surviving input channels. The pruned module's widths (and, from a dummy forward pass, its output resolution)
give the :class:`LayerConfig` and the width the next layer sees; nothing about the pruning rules is restated
here. The fixed parts are entries too: the stem (never pruned) and the head (global pooling + classifier)
for every width the last layer can produce. Distinct configurations are timed once, however many
(keep-ratio, input width) pairs lead to them.

**How it is timed.** :meth:`LatencyTable.build` times each configuration's pruned module in isolation
(eval mode, ``torch.inference_mode``, the table's batch size, thread count and device): one forward pass per
sample, timed with ``time.perf_counter`` (with a device synchronisation on CUDA), ``warmup`` untimed passes
first. The samples are taken in ``rounds`` interleaved passes over all configurations (each in a fresh random
order; ``cfg.repeats`` calls per pass), so a burst of load from another process on a shared machine spreads
over many entries instead of spoiling a few, and every entry is sampled in many moments: at the same number of
calls, 15 rounds of 10 repeat far better than 5 rounds of 30 (see the bench); an entry is the aggregate of
its per-round figures (see Noise).

**Overhead.** Timing layers one by one misses what an end-to-end forward pass adds: ``ChildNet.forward`` and
its per-module dispatch, ``flatten``, the interpreter's work between layers, and the cache state one layer
leaves to the next (a layer timed alone finds its weights and input in cache; inside a child the previous
layers have evicted them). At build time ``calibration`` random children are built, really pruned and timed
end to end in the same interleaved rounds as the entries (timed exactly as
:func:`rlnas.latency.measure_latency` times a child, so calibration and entries see the same machine state),
and three overhead fits are stored, each ``predicted = intercept + scale * summed + sum over the child's
layers of per_operator[op]``:

- ``intercept`` (the default): scale 1, intercept = median of measured - summed: one robust parameter.
- ``operators``: scale 1, no intercept, one overhead per operator kind, fitted by ridge least
  squares on the relative error (what MAPE and the reward's ``cost / target`` see), shrunk towards the
  ``intercept`` fit spread evenly over the layers (ridge weight :data:`OPERATOR_RIDGE`). What a layer adds
  inside a child depends on its kind: on the default preset at batch 1 a max-pooling layer adds about 30 us
  more than it costs alone and a skip hardly anything. In cross-validation on the 50 validation children of
  one bench run it ranked them better than one constant (Kendall tau 0.92 vs 0.88), but fitted on the 32
  calibration children it did not beat it on the next run (0.876 vs 0.886): the host's noise decides.
- ``affine``: intercept and scale, least squares on the relative error; a fitted scale mostly absorbs how
  busy a shared machine happened to be during calibration.

:meth:`LatencyTable.use_fit` switches between them and ``none`` (the bare sum).

**Noise.** On a shared CPU (a VM whose host steals cycles) the speed of the same child drifts by up to 2x over
minutes, and even a median of 30 consecutive calls moves by tens of percent. Entries and end-to-end
measurements therefore default to the minimum: ``latency.statistic: min`` within each round and
``aggregate="min"`` over the interleaved rounds, i.e. the least-disturbed call of all, the figure the child
reaches whenever the device is not shared; measured again it repeats within a few percent, where medians
repeat within 15-20% (see the bench). ``statistic: median`` and ``aggregate="median"`` are available.

**Predicting.** :meth:`LatencyTable.predict` follows a precomputed transition map ``(position, operator,
keep-ratio, input width) -> (entry, output width)``: a handful of dictionary look-ups, no torch module is built
(a few microseconds per child).

**The file** (JSON, :data:`TABLE_FORMAT_VERSION`) records the device (CPU model from ``/proc/cpuinfo`` or the
CUDA device name), thread count, batch size, torch version, measurement settings, the space fingerprint and
declaration, the overhead fit and its calibration children, and every entry. Loading it against another
space, device, thread count or batch size raises :class:`rlnas.config.ConfigError` naming both values.
"""

from __future__ import annotations

import datetime
import json
import math
import platform
import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from rlnas.config import ConfigError, LatencyConfig
from rlnas.latency.flops import count_flops
from rlnas.latency.measure import summarise_times, torch_threads
from rlnas.pruning.prune import prune_child, prune_layer
from rlnas.space.model import ChildNet, build_model
from rlnas.space.ops import OPERATORS, ConvBN, MBConv, Pool, SepConv
from rlnas.space.space import Arch, SearchSpace

TABLE_FORMAT_VERSION = 1
STEM, HEAD = "stem", "head"
"""Pseudo-operators of the fixed parts: the stem (position -1) and the pool + classifier (position num_layers)."""

Fit = Literal["operators", "intercept", "affine"]
FITS: tuple[Fit, ...] = ("intercept", "operators", "affine")
"""The stored overhead fits; the first is the default."""
OPERATOR_RIDGE = 1.0
"""Ridge weight pulling the per-operator overheads towards one shared per-layer overhead (``operators`` fit)."""


# ------------------------------------------------------------------------------------------ configurations


@dataclass(frozen=True, order=True)
class LayerConfig:
    """One distinct pruned layer as it runs inside a child.

    ``position``: the slot index (-1 for the stem, ``num_layers`` for the head). ``c_in``/``c_out``: channels
    actually read and produced after pruning (for the head: pooled features in, classes out). ``hidden``: the
    expanded width of an MBConv after pruning (None elsewhere). ``resolution``: input height and width.
    ``variant``: ``"residual"`` (MBConv with its skip connection), ``"projection"`` (skip/pooling with a 1x1
    projection), ``"identity"`` (skip without one) or ``""``.
    """

    position: int
    op: str
    c_in: int
    c_out: int
    hidden: int | None
    resolution: tuple[int, int]
    stride: int
    variant: str = ""

    def to_json(self) -> dict:
        d = asdict(self)
        d["resolution"] = list(self.resolution)
        return d

    @classmethod
    def from_json(cls, d: dict) -> LayerConfig:
        return cls(
            position=int(d["position"]),
            op=str(d["op"]),
            c_in=int(d["c_in"]),
            c_out=int(d["c_out"]),
            hidden=None if d.get("hidden") is None else int(d["hidden"]),
            resolution=(int(d["resolution"][0]), int(d["resolution"][1])),
            stride=int(d["stride"]),
            variant=str(d.get("variant", "")),
        )

    def __str__(self) -> str:
        hidden = f" hidden {self.hidden}" if self.hidden is not None else ""
        variant = f" ({self.variant})" if self.variant else ""
        h, w = self.resolution
        return f"#{self.position} {self.op}{variant} {self.c_in}->{self.c_out}{hidden} @{h}x{w} s{self.stride}"


def describe_layer(
    position: int, op: str, layer: nn.Module, c_in: int, resolution: tuple[int, int], stride: int
) -> LayerConfig:
    """The :class:`LayerConfig` of a (pruned) operator module reading ``c_in`` channels, from its actual widths."""
    hidden, variant = None, ""
    if isinstance(layer, ConvBN):
        c_in, c_out = layer.conv.in_channels, layer.conv.out_channels
        variant = "projection" if op in ("skip", "maxpool3x3", "avgpool3x3") else ""
    elif isinstance(layer, SepConv):
        c_in, c_out = layer.depthwise.conv.in_channels, layer.pointwise.conv.out_channels
    elif isinstance(layer, MBConv):
        c_in, hidden, c_out = (
            layer.expand.conv.in_channels,
            layer.expand.conv.out_channels,
            layer.project.conv.out_channels,
        )
        variant = "residual" if layer.residual else ""
    elif isinstance(layer, Pool) and layer.projection is not None:
        c_in, c_out = layer.projection.conv.in_channels, layer.projection.conv.out_channels
        variant = "projection"
    elif isinstance(layer, Pool | nn.Identity):  # pass-through: the input width goes on
        c_out = c_in
        variant = "identity" if isinstance(layer, nn.Identity) else ""
    else:
        raise TypeError(f"layer {position}: no latency-table rule for {type(layer).__name__}")
    return LayerConfig(position, op, c_in, c_out, hidden, tuple(resolution), stride, variant)


@dataclass
class LayerEnumeration:
    """Every distinct pruned layer a space can produce, and how a child's choices map onto them.

    ``transitions[(position, op, keep, c_in)] = (config, c_out)``; ``head[c_in]`` is the head config for a last
    layer of width ``c_in``; ``recipes[config] = (op, keep, c_in)`` rebuilds the module (:meth:`build_module`).
    """

    space: SearchSpace
    stem: LayerConfig
    transitions: dict[tuple[int, str, float, int], tuple[LayerConfig, int]]
    head: dict[int, LayerConfig]
    recipes: dict[LayerConfig, tuple[str, float, int]] = field(repr=False)

    @property
    def configs(self) -> list[LayerConfig]:
        """All distinct configurations: stem, searchable layers (by position), heads."""
        layers = sorted({c for c, _ in self.transitions.values()})
        return [self.stem, *layers, *sorted(self.head.values())]

    def arch_configs(self, arch: Arch | str) -> list[LayerConfig]:
        """The configurations a pruned child of ``arch`` runs: stem, one per layer, head."""
        arch = self.space.parse(arch) if isinstance(arch, str) else arch
        width, out = self.space.config.stem_width, [self.stem]
        for i, (op, keep) in enumerate(zip(arch.ops, arch.keeps, strict=True)):
            config, width = self.transitions[(i, op, keep, width)]
            out.append(config)
        out.append(self.head[width])
        return out

    def build_module(self, config: LayerConfig) -> nn.Module:
        """A module running ``config`` (eval mode, random weights): the stem, the head, or a pruned operator."""
        space = self.space
        if config.op == STEM:
            return ConvBN(space.input_shape[0], space.config.stem_width, 3, space.config.stem_stride).eval()
        if config.op == HEAD:
            return _Head(config.c_in, space.num_classes).eval()
        op, keep, c_in = self.recipes[config]
        return _pruned_operator(space, config.position, op, keep, c_in)


class _Head(nn.Module):
    """The end of :class:`~rlnas.space.model.ChildNet`: global average pooling, flatten, linear classifier."""

    def __init__(self, c_in: int, classes: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_in, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(x), 1))


def _pruned_operator(space: SearchSpace, position: int, op: str, keep: float, c_in: int) -> nn.Module:
    """Slot ``position``'s operator built at full width, pruned by prune.py's own rule to read ``c_in`` inputs."""
    slot = space.slots[position]
    layer = OPERATORS[op](slot.c_in, slot.c_out, slot.stride)
    prune_layer(position, layer, torch.arange(c_in), keep)
    return layer.eval()


@torch.inference_mode()
def _out_resolution(module: nn.Module, c_in: int, resolution: tuple[int, int]) -> tuple[int, int]:
    return tuple(module.eval()(torch.zeros(1, c_in, *resolution)).shape[-2:])


def enumerate_layers(space: SearchSpace) -> LayerEnumeration:
    """List every distinct pruned layer configuration ``space`` can produce (see the module docstring)."""
    stem_module = ConvBN(space.input_shape[0], space.config.stem_width, 3, space.config.stem_stride)
    in_res = tuple(space.input_shape[1:])
    stem = LayerConfig(-1, STEM, space.input_shape[0], space.config.stem_width, None, in_res, space.config.stem_stride)
    resolution = _out_resolution(stem_module, space.input_shape[0], in_res)
    widths = {space.config.stem_width}  # the stem is never pruned
    transitions, recipes = {}, {}
    for slot in space.slots:
        next_widths, next_res = set(), None
        for c_in in sorted(widths):
            for op in space.operators:
                for keep in space.keep_ratios:
                    module = _pruned_operator(space, slot.index, op, keep, c_in)
                    config = describe_layer(slot.index, op, module, c_in, resolution, slot.stride)
                    res = _out_resolution(module, c_in, resolution)
                    if next_res is not None and res != next_res:
                        raise AssertionError(f"slot {slot.index}: operators disagree on the output resolution")
                    next_res = res
                    transitions[(slot.index, op, keep, c_in)] = (config, config.c_out)
                    recipes.setdefault(config, (op, keep, c_in))
                    next_widths.add(config.c_out)
        widths, resolution = next_widths, next_res
    head = {w: LayerConfig(space.num_layers, HEAD, w, space.num_classes, None, resolution, 1) for w in sorted(widths)}
    return LayerEnumeration(space, stem, transitions, head, recipes)


def list_layer_configs(space: SearchSpace) -> list[LayerConfig]:
    """Every distinct pruned layer configuration of ``space`` (stem, searchable layers, heads)."""
    return enumerate_layers(space).configs


@torch.inference_mode()
def child_layer_configs(model: ChildNet, space: SearchSpace) -> list[LayerConfig]:
    """The configurations a real (pruned or not) child runs, read from its modules and a forward pass."""
    shapes: list[tuple[int, ...]] = []
    hooks = [layer.register_forward_pre_hook(lambda _m, a: shapes.append(tuple(a[0].shape))) for layer in model.layers]
    try:
        model.eval()(torch.zeros(1, *space.input_shape, device=next(model.parameters()).device))
    finally:
        for h in hooks:
            h.remove()
    arch = Arch.parse(model.arch)
    c = space.config
    out = [LayerConfig(-1, STEM, space.input_shape[0], c.stem_width, None, tuple(space.input_shape[1:]), c.stem_stride)]
    for i, (op, layer, shape) in enumerate(zip(arch.ops, model.layers, shapes, strict=True)):
        out.append(describe_layer(i, op, layer, shape[1], tuple(shape[2:]), space.slots[i].stride))
    last_res = _out_resolution(model.layers[-1], shapes[-1][1], tuple(shapes[-1][2:])) if shapes else None
    out.append(LayerConfig(space.num_layers, HEAD, model.classifier.in_features, space.num_classes, None, last_res, 1))
    return out


# ----------------------------------------------------------------------------------------------- the device


def device_name(device: str = "cpu") -> str:
    """The CPU model (``/proc/cpuinfo``) or the CUDA device's name: what a table is valid for."""
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("latency device is cuda but no CUDA device is available")
        return torch.cuda.get_device_name(dev)
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


# ------------------------------------------------------------------------------------------------ timing


Aggregate = Literal["min", "median"]


def _aggregate(values: Sequence[float], how: Aggregate) -> float:
    if how == "min":
        return min(values)
    if how == "median":
        return statistics.median(values)
    raise ValueError(f"aggregate {how!r}: choose 'min' or 'median'")


def _time_entries(
    modules: Sequence[nn.Module],
    inputs: Sequence[torch.Tensor],
    cfg: LatencyConfig,
    rounds: int,
    aggregate: Aggregate,
    seed: int,
    progress: bool,
    desc: str,
) -> list[float]:
    """Milliseconds per module: in each of ``rounds`` interleaved passes (shuffled order) the ``cfg.statistic``
    of ``cfg.repeats`` timed calls after a warm-up (``cfg.warmup`` in the first pass, fewer after), exactly as
    :func:`measure_latency` times a child; the per-round figures are then aggregated (``min`` or ``median``)."""
    from tqdm.auto import tqdm

    device = torch.device(cfg.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    rng = np.random.default_rng(seed)
    per_round: list[list[float]] = [[] for _ in modules]
    clock = time.perf_counter
    bar = tqdm(total=rounds * len(modules), desc=desc, unit="entry", disable=not progress, leave=False)
    with torch_threads(cfg.threads), torch.inference_mode(), bar:
        for r in range(rounds):
            warmup = cfg.warmup if r == 0 else min(cfg.warmup, 3)
            for j in rng.permutation(len(modules)):
                module, x, times = modules[j], inputs[j], []
                for _ in range(warmup):
                    module(x)
                sync()
                for _ in range(cfg.repeats):
                    start = clock()
                    module(x)
                    sync()
                    times.append(clock() - start)
                per_round[j].append(summarise_times(times, cfg.statistic))
                bar.update()
    return [_aggregate(t, aggregate) for t in per_round]


def _pruned_children(space: SearchSpace, archs: Sequence[Arch], seed: int, device: str = "cpu") -> list[nn.Module]:
    """The really pruned children of ``archs`` (eval mode), their weights drawn under ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return [prune_child(build_model(space, arch)).to(device).eval() for arch in archs]


def measure_children(
    space: SearchSpace,
    archs: Sequence[Arch],
    cfg: LatencyConfig,
    rounds: int = 15,
    aggregate: Aggregate = "min",
    seed: int = 0,
    progress: bool = False,
    desc: str = "children",
) -> np.ndarray:
    """End-to-end latency (ms) of really pruned children (:func:`build_model` + :func:`prune_child`), timed in
    interleaved rounds and aggregated exactly as the table's entries are (:func:`_time_entries`)."""
    models = _pruned_children(space, archs, seed, cfg.device)
    inputs = [torch.randn(cfg.batch_size, *space.input_shape, device=cfg.device) for _ in archs]
    return np.array(_time_entries(models, inputs, cfg, rounds, aggregate, seed, progress, desc))


@dataclass(frozen=True)
class Overhead:
    """What an end-to-end pass adds to the summed entries: ``intercept + scale * summed + sum of
    per_operator[op]`` over the child's searchable layers (see the module docstring)."""

    intercept_ms: float = 0.0
    scale: float = 1.0
    per_operator_ms: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict | list) -> Overhead:
        if isinstance(d, list):  # tables written before per-operator fits: [intercept, scale]
            return cls(float(d[0]), float(d[1]))
        per_op = {str(k): float(v) for k, v in d.get("per_operator_ms", {}).items()}
        return cls(float(d.get("intercept_ms", 0.0)), float(d.get("scale", 1.0)), per_op)


def _operator_counts(space: SearchSpace, archs: Sequence[Arch]) -> np.ndarray:
    return np.array([[arch.ops.count(op) for op in space.operators] for arch in archs], float)


def _fit(space: SearchSpace, archs: Sequence[Arch], summed: np.ndarray, measured: np.ndarray, fit: Fit) -> Overhead:
    """The overhead ``fit`` of ``measured`` end-to-end latencies on the ``summed`` entries of ``archs``."""
    summed, measured = np.asarray(summed, float), np.asarray(measured, float)
    if fit not in FITS:
        raise ValueError(f"fit {fit!r}: choose one of {', '.join(FITS)}")
    intercept = float(np.median(measured - summed))
    if fit == "intercept" or len(summed) < 3 or np.ptp(summed) <= 0:
        return Overhead(intercept, 1.0)
    w = 1.0 / measured  # relative least squares: minimise sum(((prediction - m) / m)^2)
    if fit == "affine":
        (a, b), *_ = np.linalg.lstsq(np.stack([w, w * summed], axis=1), np.ones_like(measured), rcond=None)
        return Overhead(float(a), float(b))
    counts = _operator_counts(space, archs)
    shared = intercept / space.num_layers
    x = counts * w[:, None]
    residual = (measured - summed - counts.sum(axis=1) * shared) * w
    delta = np.linalg.solve(x.T @ x + OPERATOR_RIDGE * np.eye(len(space.operators)), x.T @ residual)
    return Overhead(0.0, 1.0, {op: float(shared + d) for op, d in zip(space.operators, delta, strict=True)})


# ------------------------------------------------------------------------------------------------- table


@dataclass
class LatencyTable:
    """Per-configuration latencies of one space on one device, and the predictor built on them."""

    space: SearchSpace
    entries: dict[LayerConfig, float]
    device: str
    device_name: str
    threads: int
    batch_size: int
    torch_version: str = torch.__version__
    overhead: Overhead = field(default_factory=Overhead)
    overhead_fit: str = "none"
    fits: dict[str, Overhead] = field(default_factory=dict)
    calibration: list[dict] = field(default_factory=list)
    measurement: dict = field(default_factory=dict)
    build_s: float = 0.0
    created: str = ""
    _enum: LayerEnumeration | None = field(default=None, repr=False)
    _fast: dict | None = field(default=None, repr=False)

    # -------------------------------------------------------------------------------------------- building

    @classmethod
    def build(
        cls,
        space: SearchSpace,
        cfg: LatencyConfig,
        *,
        rounds: int = 15,
        aggregate: Aggregate = "min",
        calibration: int = 32,
        fit: Fit = FITS[0],
        seed: int = 0,
        progress: bool = True,
    ) -> LatencyTable:
        """Time every configuration of ``space`` on ``cfg``'s device and fit the overhead on ``calibration``
        random children measured end to end in the same interleaved rounds, so that entries and children see the
        same machine state (0: no overhead term)."""
        start = time.perf_counter()
        dev = torch.device(cfg.device)
        name = device_name(cfg.device)
        enum = enumerate_layers(space)
        configs = enum.configs
        modules, inputs = [], []
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for config in configs:
                modules.append(enum.build_module(config).to(dev).eval())
                inputs.append(torch.randn(cfg.batch_size, config.c_in, *config.resolution, device=dev))
        rng = np.random.default_rng(seed + 1)
        archs = [space.sample(rng) for _ in range(calibration)]
        modules += _pruned_children(space, archs, seed, cfg.device)
        inputs += [torch.randn(cfg.batch_size, *space.input_shape, device=dev) for _ in archs]
        times = _time_entries(modules, inputs, cfg, rounds, aggregate, seed, progress, "latency table")
        table = cls(
            space=space,
            entries=dict(zip(configs, times[: len(configs)], strict=True)),
            device=dev.type,
            device_name=name,
            threads=cfg.threads,
            batch_size=cfg.batch_size,
            measurement={
                "warmup": cfg.warmup,
                "repeats": cfg.repeats,
                "statistic": cfg.statistic,
                "rounds": rounds,
                "aggregate": aggregate,
                "seed": seed,
            },
            created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            _enum=enum,
        )
        if archs:
            measured = np.array(times[len(configs) :])
            summed = np.array([table.summed(a) for a in archs])
            table.calibration = [
                {"arch": str(a), "measured_ms": float(m), "summed_ms": float(s)}
                for a, m, s in zip(archs, measured, summed, strict=True)
            ]
            table.fits = {name: _fit(space, archs, summed, measured, name) for name in FITS}
            table.use_fit(fit)
        table.build_s = time.perf_counter() - start
        return table

    def use_fit(self, fit: Fit | Literal["none"]) -> None:
        """Predict with one of the stored overhead fits (``operators``, ``intercept``, ``affine``) or ``none``
        (the bare sum)."""
        if fit == "none":
            self.overhead = Overhead()
        elif fit in self.fits:
            self.overhead = self.fits[fit]
        else:
            raise ValueError(f"fit {fit!r}: this table has {', '.join(self.fits) or 'no fits'} (or 'none')")
        self.overhead_fit = fit

    # ------------------------------------------------------------------------------------------ predicting

    @property
    def enumeration(self) -> LayerEnumeration:
        if self._enum is None:
            self._enum = enumerate_layers(self.space)
        return self._enum

    def _transitions(self) -> dict:
        if self._fast is None:
            enum = self.enumeration
            missing = [c for c in enum.configs if c not in self.entries]
            if missing:
                raise ConfigError(
                    f"latency table has no entry for {len(missing)} configuration(s) this space produces "
                    f"(e.g. {missing[0]}): it was built by another rlnas version; rebuild it with "
                    f"`rlnas latency build`"
                )
            self._fast = {
                "stem": self.entries[enum.stem],
                "layers": {k: (self.entries[c], w) for k, (c, w) in enum.transitions.items()},
                "head": {w: self.entries[c] for w, c in enum.head.items()},
            }
        return self._fast

    def layer_configs(self, arch: Arch | str) -> list[LayerConfig]:
        """The entries a child of ``arch`` is predicted from: stem, one per searchable layer, head."""
        return self.enumeration.arch_configs(arch)

    def summed(self, arch: Arch | str) -> float:
        """Sum of the child's entries in ms (stem + layers + head), without the overhead term."""
        fast = self._transitions()
        if isinstance(arch, str):
            arch = self.space.parse(arch)
        layers, width, total = fast["layers"], self.space.config.stem_width, fast["stem"]
        try:
            for i, (op, keep) in enumerate(zip(arch.ops, arch.keeps, strict=True)):
                ms, width = layers[(i, op, keep, width)]
                total += ms
        except (KeyError, ValueError):
            self.space.validate(arch)  # names the offending layer
            raise
        return total + fast["head"][width]

    def predict(self, arch: Arch | str) -> float:
        """Predicted end-to-end latency (ms) of the pruned child: the summed entries plus the overhead."""
        if isinstance(arch, str):
            arch = self.space.parse(arch)
        o = self.overhead
        per_op = sum(o.per_operator_ms.get(op, 0.0) for op in arch.ops) if o.per_operator_ms else 0.0
        return o.intercept_ms + o.scale * self.summed(arch) + per_op

    def predict_many(self, archs: Iterable[Arch | str]) -> np.ndarray:
        return np.array([self.predict(a) for a in archs])

    # ---------------------------------------------------------------------------------------------- files

    def to_json(self) -> dict:
        return {
            "format_version": TABLE_FORMAT_VERSION,
            "space_fingerprint": self.space.fingerprint,
            "space": self.space.declaration(),
            "device": self.device,
            "device_name": self.device_name,
            "threads": self.threads,
            "batch_size": self.batch_size,
            "torch_version": self.torch_version,
            "measurement": self.measurement,
            "overhead": {"fit": self.overhead_fit, **self.overhead.to_json()},
            "fits": {name: o.to_json() for name, o in self.fits.items()},
            "calibration": self.calibration,
            "build_s": self.build_s,
            "created": self.created,
            "entries": [{**c.to_json(), "ms": ms} for c, ms in self.entries.items()],
        }

    def save(self, path: str | Path) -> Path:
        """Write the table as JSON (parent folders are created)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path, space: SearchSpace, cfg: LatencyConfig | None = None) -> LatencyTable:
        """Read a table, refusing it (:class:`ConfigError`) unless it was built for ``space`` and, when ``cfg``
        is given, for ``cfg``'s device (type and model), thread count and batch size."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ConfigError(f"latency table {path}: cannot read it: {err}") from err
        fix = "rebuild it with `rlnas latency build --env PRESET --out PATH` on the target device"
        if data.get("format_version") != TABLE_FORMAT_VERSION:
            raise ConfigError(
                f"latency table {path}: format version {data.get('format_version')!r}, this rlnas reads "
                f"version {TABLE_FORMAT_VERSION}; {fix}"
            )
        if data["space_fingerprint"] != space.fingerprint:
            raise ConfigError(
                f"latency table {path} was built for search space {data['space_fingerprint']}, not for this "
                f"space {space.fingerprint}; {fix}"
            )
        if cfg is not None:
            want_type = torch.device(cfg.device).type
            checks = [
                ("device", data["device"], want_type),
                ("device model", data["device_name"], device_name(cfg.device)),
                ("threads", data["threads"], cfg.threads),
                ("batch size", data["batch_size"], cfg.batch_size),
            ]
            for what, have, want in checks:
                if have != want:
                    raise ConfigError(
                        f"latency table {path} was measured with {what} {have!r}, but latency is wanted for "
                        f"{what} {want!r}; {fix}"
                    )
        overhead = data.get("overhead", {})
        return cls(
            space=space,
            entries={LayerConfig.from_json(e): float(e["ms"]) for e in data["entries"]},
            device=data["device"],
            device_name=data["device_name"],
            threads=int(data["threads"]),
            batch_size=int(data["batch_size"]),
            torch_version=data.get("torch_version", ""),
            overhead=Overhead.from_json(overhead),
            overhead_fit=str(overhead.get("fit", "none")),
            fits={k: Overhead.from_json(f) for k, f in data.get("fits", {}).items()},
            calibration=list(data.get("calibration", [])),
            measurement=dict(data.get("measurement", {})),
            build_s=float(data.get("build_s", 0.0)),
            created=str(data.get("created", "")),
        )


# ---------------------------------------------------------------------------------------------- validation


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b (ties in either variable accounted for), numpy only, O(n^2)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    iu = np.triu_indices(len(x), 1)
    dx = np.sign(x[:, None] - x[None, :])[iu]
    dy = np.sign(y[:, None] - y[None, :])[iu]
    denom = math.sqrt(float(np.sum(dx != 0)) * float(np.sum(dy != 0)))
    return float(np.sum(dx * dy) / denom) if denom else float("nan")


def _ranks(v: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank."""
    order = np.argsort(v, kind="mergesort")
    sorted_v = v[order]
    ranks = np.empty(len(v))
    i = 0
    while i < len(v):
        j = i
        while j + 1 < len(v) and sorted_v[j + 1] == sorted_v[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman_rho(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (Pearson correlation of average ranks), numpy only."""
    rx, ry = _ranks(np.asarray(x, float)), _ranks(np.asarray(y, float))
    return float(np.corrcoef(rx, ry)[0, 1])


@dataclass
class Validation:
    """Predicted vs measured end-to-end latency of random pruned children (and their FLOPs)."""

    archs: list[str]
    predicted: np.ndarray
    measured: np.ndarray
    flops: np.ndarray
    seconds: float

    @property
    def errors_pct(self) -> np.ndarray:
        return 100.0 * (self.predicted - self.measured) / self.measured

    @property
    def mape(self) -> float:
        """Mean absolute percentage error of the prediction."""
        return float(np.mean(np.abs(self.errors_pct)))

    @property
    def max_abs_pct(self) -> float:
        return float(np.max(np.abs(self.errors_pct)))

    @property
    def kendall_tau(self) -> float:
        return kendall_tau(self.predicted, self.measured)

    @property
    def spearman_rho(self) -> float:
        return spearman_rho(self.predicted, self.measured)

    @property
    def flops_kendall_tau(self) -> float:
        return kendall_tau(self.flops, self.measured)

    @property
    def flops_spearman_rho(self) -> float:
        return spearman_rho(self.flops, self.measured)

    def summary(self) -> dict[str, float]:
        return {
            "mape_pct": self.mape,
            "max_abs_pct": self.max_abs_pct,
            "kendall_tau": self.kendall_tau,
            "spearman_rho": self.spearman_rho,
            "flops_kendall_tau": self.flops_kendall_tau,
            "flops_spearman_rho": self.flops_spearman_rho,
        }


def validate(
    table: LatencyTable,
    space: SearchSpace,
    n: int = 50,
    seed: int = 1234,
    cfg: LatencyConfig | None = None,
    *,
    rounds: int | None = None,
    aggregate: Aggregate | None = None,
    progress: bool = True,
) -> Validation:
    """Measure ``n`` random really-pruned children end to end (:func:`measure_children`: timed in ``rounds``
    interleaved rounds, aggregated; both like the table's entries unless told otherwise)
    and compare with the table's predictions; also counts their FLOPs (the proxy)."""
    if space.fingerprint != table.space.fingerprint:
        raise ConfigError(
            f"latency table was built for search space {table.space.fingerprint}, not {space.fingerprint}"
        )
    cfg = cfg or LatencyConfig(
        device=table.device,
        threads=table.threads,
        batch_size=table.batch_size,
        warmup=int(table.measurement.get("warmup", 10)),
        repeats=int(table.measurement.get("repeats", 30)),
        statistic=table.measurement.get("statistic", "median"),
    )
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    archs = [space.sample(rng) for _ in range(n)]
    aggregate = aggregate or table.measurement.get("aggregate", "min")
    rounds = rounds or int(table.measurement.get("rounds", 5))
    measured = measure_children(space, archs, cfg, rounds, aggregate, seed, progress, "validation")
    flops = np.array([count_flops(prune_child(build_model(space, a)), space.input_shape) for a in archs], float)
    predicted = table.predict_many(archs)
    return Validation([str(a) for a in archs], predicted, measured, flops, time.perf_counter() - start)


def plot_validation(result: Validation, path: str | Path, title: str | None = None) -> Path:
    """Scatter plot predicted vs measured (and FLOPs vs measured) as a PNG; needs matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise RuntimeError("plotting a latency validation needs matplotlib: pip install matplotlib") from err
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4.5))
    lo = float(min(result.measured.min(), result.predicted.min())) * 0.95
    hi = float(max(result.measured.max(), result.predicted.max())) * 1.05
    ax.plot([lo, hi], [lo, hi], color="grey", lw=1, ls="--")
    ax.scatter(result.measured, result.predicted, s=14)
    ax.set(xlabel="measured latency (ms)", ylabel="predicted latency (ms)", xlim=(lo, hi), ylim=(lo, hi))
    ax.set_title(f"table: MAPE {result.mape:.1f}%, tau {result.kendall_tau:.3f}", fontsize=10)
    ax2.scatter(result.measured, result.flops / 1e6, s=14, color="tab:orange")
    ax2.set(xlabel="measured latency (ms)", ylabel="MFLOPs (pruned child)")
    ax2.set_title(f"FLOPs proxy: tau {result.flops_kendall_tau:.3f}", fontsize=10)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


__all__ = [
    "HEAD",
    "STEM",
    "TABLE_FORMAT_VERSION",
    "LatencyTable",
    "LayerConfig",
    "LayerEnumeration",
    "Validation",
    "child_layer_configs",
    "describe_layer",
    "device_name",
    "enumerate_layers",
    "kendall_tau",
    "list_layer_configs",
    "measure_children",
    "plot_validation",
    "spearman_rho",
    "validate",
]
