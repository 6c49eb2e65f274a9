"""The search space of a pruning run: one keep-ratio per prunable group of an existing model.

:class:`GroupSpace` offers what the shared search code asks of a space (``nvec``, ``fingerprint``,
``canonical_action``, ``decode``, ``encode``, ``parse``, ``uniform_members``, ``declaration``; ``operators`` is
empty: a plan chooses widths only), so the environment, strategies, controller, store and logging treat a
model's groups as they treat a :class:`~rlnas.space.SearchSpace`. Kept free of Torch-Pruning so that a saved
controller loads without it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from rlnas.space.space import check_format, fingerprint_of

GROUP_SPACE_FORMAT_VERSION = 1
KIND = "groups"
"""The ``kind`` of a group space's declaration (a :class:`~rlnas.space.SearchSpace` declares none)."""


@dataclass(frozen=True)
class Group:
    """A prunable group: its root layer (by name), output channels, channel groups (grouped convolutions keep
    the same positions in each), the root's kind, kernel and stride, and every convolution or linear layer whose
    outputs the group prunes (for observations)."""

    name: str
    channels: int
    channel_groups: int
    kind: str
    kernel: int
    stride: int
    layers: tuple[str, ...] = ()


def kept_count(group: Group, keep: float, round_to: int | None = None) -> int:
    """Channels a group keeps at ``keep``: rounded to a multiple of ``round_to`` (and of its channel groups),
    at least one unit, at most all."""
    unit = group.channel_groups * (round_to // math.gcd(round_to, group.channel_groups) if round_to else 1)
    if unit >= group.channels:
        return group.channels
    return min(group.channels, max(unit, round(group.channels * keep / unit) * unit))


@dataclass(frozen=True)
class KeepPlan:
    """A keep-ratio per group (the architecture of a pruning run); ``str`` is its stable key, ``keep:1,0.5,...``."""

    keeps: tuple[float, ...]

    def __str__(self) -> str:
        return "keep:" + ",".join(f"{k:g}" for k in self.keeps)

    @classmethod
    def parse(cls, text: str) -> KeepPlan:
        """Parse ``"keep:0.5,1,..."``; :meth:`GroupSpace.parse` also checks it fits a space."""
        prefix, _, body = text.strip().partition(":")
        try:
            if prefix != "keep" or not body:
                raise ValueError
            return cls(tuple(float(k) for k in body.split(",")))
        except ValueError:
            raise ValueError(
                f"pruning plan {text!r}: expected 'keep:' and a keep-ratio per group, e.g. keep:0.5,1"
            ) from None


class GroupSpace:
    """One keep-ratio choice per prunable group: ``MultiDiscrete([len(keep_ratios)] * groups)``.

    ``identity`` names the trained model (its name and weights' digest): plans of other weights are other plans.
    """

    operators: tuple[str, ...] = ()

    def __init__(self, groups: Sequence[Group], keep_ratios: Sequence[float], round_to: int | None, identity: str):
        self.groups = list(groups)
        self.keep_ratios = tuple(float(k) for k in keep_ratios)
        self.round_to = round_to
        self.identity = identity
        self.nvec = np.full(len(self.groups), len(self.keep_ratios), dtype=np.int64)

    @property
    def size(self) -> int:
        """Number of distinct plans (actions)."""
        return len(self.keep_ratios) ** len(self.groups)

    def counts(self, action: Sequence[int]) -> list[int]:
        """Channels every group keeps under ``action``."""
        return [
            kept_count(g, self.keep_ratios[int(a)], self.round_to) for g, a in zip(self.groups, action, strict=True)
        ]

    def canonical_action(self, action: Sequence[int]) -> tuple[int, ...]:
        """The smallest index per group that keeps as many channels (ratios that round alike are one choice)."""
        action = np.asarray(action, dtype=np.int64)
        if action.shape != self.nvec.shape or (action < 0).any() or (action >= self.nvec).any():
            raise ValueError(f"action {action.tolist()} is not in MultiDiscrete({self.nvec.tolist()})")
        out = []
        for group, a in zip(self.groups, action, strict=True):
            counts = [kept_count(group, k, self.round_to) for k in self.keep_ratios]
            out.append(counts.index(counts[int(a)]))
        return tuple(out)

    def decode(self, action: Sequence[int]) -> KeepPlan:
        """The plan an action describes."""
        return KeepPlan(tuple(self.keep_ratios[int(a)] for a in action))

    def encode(self, plan: KeepPlan) -> np.ndarray:
        """The action of a plan of this space (int64)."""
        self.validate(plan)
        return np.array([self.keep_ratios.index(k) for k in plan.keeps], dtype=np.int64)

    def parse(self, text: str) -> KeepPlan:
        """Parse a plan string and check that it belongs to this space."""
        plan = KeepPlan.parse(text)
        self.validate(plan)
        return plan

    def validate(self, plan: KeepPlan) -> None:
        """Raise ``ValueError`` naming the group if ``plan`` is not a member of this space."""
        if len(plan.keeps) != len(self.groups):
            raise ValueError(f"the plan has {len(plan.keeps)} keep-ratios; this model has {len(self.groups)} groups")
        for group, keep in zip(self.groups, plan.keeps, strict=True):
            if keep not in self.keep_ratios:
                raise ValueError(f"group {group.name!r}: keep-ratio {keep:g} is not one of {list(self.keep_ratios)}")

    def uniform_members(self) -> list[KeepPlan]:
        """Every plan keeping the same ratio in all groups."""
        return [KeepPlan((k,) * len(self.groups)) for k in self.keep_ratios]

    def declaration(self) -> dict:
        """Everything that defines the space, as plain data (stored beside policies and runs)."""
        return {
            "kind": KIND,
            "format_version": GROUP_SPACE_FORMAT_VERSION,
            "model": self.identity,
            "groups": [asdict(g) for g in self.groups],
            "keep_ratios": list(self.keep_ratios),
            "round_to": self.round_to,
        }

    @classmethod
    def from_declaration(cls, data: dict) -> GroupSpace:
        """Rebuild a space from :meth:`declaration` output."""
        check_format(data, GROUP_SPACE_FORMAT_VERSION, "group-space")
        groups = [Group(**{**g, "layers": tuple(g.get("layers", ()))}) for g in data["groups"]]
        return cls(groups, data["keep_ratios"], data["round_to"], data["model"])

    @property
    def fingerprint(self) -> str:
        """A stable hash of the declaration: equal spaces have equal fingerprints across runs and machines."""
        return fingerprint_of(self.declaration())

    def __repr__(self) -> str:
        return (
            f"GroupSpace({len(self.groups)} groups of {self.identity}, {len(self.keep_ratios)} keep-ratios, "
            f"{self.size:.3g} plans, fingerprint {self.fingerprint})"
        )
