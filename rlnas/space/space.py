"""Search spaces and architectures: slots, encodings to and from actions, strings and fingerprints."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

from rlnas.config import ConfigError, SpaceConfig, StageConfig

SPACE_FORMAT_VERSION = 1


@dataclass(frozen=True)
class LayerSlot:
    """One searchable layer position: its stage, widths and stride."""

    index: int
    stage: int
    c_in: int
    c_out: int
    stride: int

    @property
    def keeps_shape(self) -> bool:
        """Same width in and out and stride 1: ``skip`` is the identity here, and pooling needs no projection."""
        return self.c_in == self.c_out and self.stride == 1


@dataclass(frozen=True)
class Arch:
    """An architecture: one (operator, keep-ratio) pair per searchable layer."""

    ops: tuple[str, ...]
    keeps: tuple[float, ...]

    def __str__(self) -> str:
        return "|".join(f"{op}@{keep}" for op, keep in zip(self.ops, self.keeps, strict=True))

    @classmethod
    def parse(cls, text: str) -> Arch:
        """Parse ``"sep3x3@0.5|skip@1.0|..."``; :meth:`SearchSpace.parse` also checks it fits a space."""
        ops, keeps = [], []
        for i, part in enumerate(text.strip().split("|")):
            op, sep, keep = part.partition("@")
            try:
                if not sep or not op:
                    raise ValueError
                keeps.append(float(keep))
            except ValueError:
                raise ValueError(
                    f"layer {i} of architecture {text!r}: expected 'operator@keep_ratio', found {part!r}"
                ) from None
            ops.append(op)
        return cls(tuple(ops), tuple(keeps))


class SearchSpace:
    """A declared search space over a fixed input shape and number of classes.

    Actions are ``MultiDiscrete`` vectors ``[op_0, keep_0, op_1, keep_1, ...]`` of 0-based indices into
    :attr:`operators` and :attr:`keep_ratios`.
    """

    def __init__(self, config: SpaceConfig, input_shape: tuple[int, int, int], num_classes: int) -> None:
        self.config = config
        self.input_shape = tuple(int(v) for v in input_shape)
        self.num_classes = int(num_classes)
        self.operators = tuple(config.operators)
        self.keep_ratios = tuple(config.keep_ratios)
        slots, c_in = [], config.stem_width
        for stage_index, stage in enumerate(config.stages):
            for j in range(stage.layers):
                stride = stage.stride if j == 0 else 1
                slots.append(LayerSlot(len(slots), stage_index, c_in, stage.width, stride))
                c_in = stage.width
        self.slots: tuple[LayerSlot, ...] = tuple(slots)
        self._identity_runs = self._runs_of_shape_keeping_slots()
        if self._identity_runs:  # the representative's identity layer, for canonical_action
            self._identity = (self.operators.index("skip"), self.keep_ratios.index(max(self.keep_ratios)))

    @property
    def num_layers(self) -> int:
        """Number of searchable layers."""
        return len(self.slots)

    @property
    def nvec(self) -> list[int]:
        """Choices per action dimension, for ``gymnasium.spaces.MultiDiscrete``."""
        return [len(self.operators), len(self.keep_ratios)] * self.num_layers

    @property
    def size(self) -> int:
        """Number of distinct architectures (actions)."""
        return int(np.prod([float(n) for n in self.nvec]))

    def decode(self, action: np.ndarray | list[int]) -> Arch:
        """Action vector -> architecture."""
        a = self._checked(action)
        return Arch(tuple(self.operators[i] for i in a[0::2]), tuple(self.keep_ratios[i] for i in a[1::2]))

    def encode(self, arch: Arch) -> np.ndarray:
        """Architecture -> action vector (int64)."""
        self.validate(arch)
        action = []
        for op, keep in zip(arch.ops, arch.keeps, strict=True):
            action += [self.operators.index(op), self.keep_ratios.index(keep)]
        return np.array(action, dtype=np.int64)

    def canonical_action(self, action: np.ndarray | list[int] | tuple[int, ...]) -> tuple[int, ...]:
        """The action of the representative of the architectures that build the same network as ``action``.

        ``skip`` where a layer keeps its width and stride is the identity (:mod:`rlnas.space.ops`): it computes
        nothing, and its keep-ratio prunes nothing. Every slot of a run of such consecutive slots has the same
        shape, so the other layers of the run can sit at any of its positions in the same order and build the
        same network (pruned the same way). The representative moves the identities to the end of their run,
        with the largest keep-ratio. NAS-Bench-Macro's table confirms it: its 6561 architectures have 3969
        distinct records, exactly these classes.
        """
        a = self._checked(action)
        if not self._identity_runs:
            return tuple(a)
        skip = self._identity[0]
        for run in self._identity_runs:
            layers = [(a[2 * i], a[2 * i + 1]) for i in run if a[2 * i] != skip]
            layers += [self._identity] * (len(run) - len(layers))
            for i, (op, keep) in zip(run, layers, strict=True):
                a[2 * i], a[2 * i + 1] = op, keep
        return tuple(a)

    def canonical(self, arch: Arch) -> Arch:
        """The representative of the architectures that build the same network as ``arch``
        (see :meth:`canonical_action`)."""
        return self.decode(self.canonical_action(self.encode(arch)))

    def _checked(self, action: np.ndarray | list[int] | tuple[int, ...]) -> list[int]:
        """The action as a list of ints; ``ValueError`` if it does not fit this space.

        Whole numbers given as floats (``2.0``) are accepted; fractions (``1.9``) are refused, not truncated.
        """
        try:
            values = np.asarray(action).reshape(-1)
            whole = values.dtype.kind in "iu" or (
                values.dtype.kind == "f" and bool(np.all(np.isfinite(values) & (values == np.round(values))))
            )
        except (TypeError, ValueError):  # ragged or not numbers at all
            whole = False
        if not whole:
            raise ValueError(f"action {repr(action)[:200]} is not a vector of whole-number choice indices")
        a = [int(v) for v in values]
        if len(a) != 2 * self.num_layers or any(not 0 <= v < n for v, n in zip(a, self.nvec, strict=True)):
            raise ValueError(f"action {a} does not fit this space (choices per dimension: {self.nvec})")
        return a

    def _runs_of_shape_keeping_slots(self) -> list[list[int]]:
        """Runs of consecutive slots where ``skip`` is the identity (same width in and out, stride 1)."""
        if "skip" not in self.operators:
            return []
        runs: list[list[int]] = [[]]
        for slot in self.slots:
            if slot.keeps_shape:
                runs[-1].append(slot.index)
            elif runs[-1]:
                runs.append([])
        return [run for run in runs if run]

    def parse(self, text: str) -> Arch:
        """Parse an architecture string and check that it belongs to this space."""
        arch = Arch.parse(text)
        self.validate(arch)
        return arch

    def validate(self, arch: Arch) -> None:
        """Raise ``ValueError`` naming the layer if ``arch`` is not a member of this space."""
        if len(arch.ops) != self.num_layers:
            raise ValueError(f"architecture has {len(arch.ops)} layers; this space has {self.num_layers}")
        for i, (op, keep) in enumerate(zip(arch.ops, arch.keeps, strict=True)):
            if op not in self.operators:
                raise ValueError(f"layer {i}: operator {op!r} is not in this space ({', '.join(self.operators)})")
            if keep not in self.keep_ratios:
                raise ValueError(f"layer {i}: keep-ratio {keep} is not in this space {list(self.keep_ratios)}")

    def sample(self, rng: np.random.Generator) -> Arch:
        """A uniformly random architecture."""
        return self.decode(rng.integers(0, self.nvec))

    def uniform(self, op: str, keep: float) -> Arch:
        """The architecture with the same operator and keep-ratio at every layer."""
        return Arch((op,) * self.num_layers, (keep,) * self.num_layers)

    def uniform_members(self) -> list[Arch]:
        """Every architecture with one operator and one keep-ratio at all layers."""
        return [self.uniform(op, keep) for op in self.operators for keep in self.keep_ratios]

    def declaration(self) -> dict:
        """Everything that defines the space, as plain data (stored beside policies and runs)."""
        return {
            "format_version": SPACE_FORMAT_VERSION,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "stem_width": self.config.stem_width,
            "stem_stride": self.config.stem_stride,
            "stages": [{"layers": s.layers, "width": s.width, "stride": s.stride} for s in self.config.stages],
            "operators": list(self.operators),
            "keep_ratios": list(self.keep_ratios),
        }

    @classmethod
    def from_declaration(cls, data: dict) -> SearchSpace:
        """Rebuild a space from :meth:`declaration` output."""
        check_format(data, SPACE_FORMAT_VERSION, "search-space")
        config = SpaceConfig(
            stem_width=data["stem_width"],
            stem_stride=data["stem_stride"],
            stages=tuple(StageConfig(**s) for s in data["stages"]),
            operators=tuple(data["operators"]),
            keep_ratios=tuple(float(k) for k in data["keep_ratios"]),
        )
        return cls(config, tuple(data["input_shape"]), data["num_classes"])

    @property
    def fingerprint(self) -> str:
        """A stable hash of the declaration: equal spaces have equal fingerprints across runs and machines."""
        return fingerprint_of(self.declaration())

    def __repr__(self) -> str:
        return (
            f"SearchSpace({self.num_layers} layers, {len(self.operators)} operators, "
            f"{len(self.keep_ratios)} keep-ratios, {self.size:.3g} architectures, fingerprint {self.fingerprint})"
        )


def check_format(declaration: dict, version: int, what: str) -> None:
    """Raise :class:`ConfigError` unless a space ``declaration`` has the format ``version`` this rlnas reads."""
    if declaration.get("format_version") != version:
        raise ConfigError(
            f"{what} format version {declaration.get('format_version')!r} is not supported "
            f"(this rlnas reads version {version})"
        )


def fingerprint_of(declaration: dict) -> str:
    """A stable 16-hex-digit hash of a space's declaration (key order and whitespace do not matter)."""
    canonical = json.dumps(declaration, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
