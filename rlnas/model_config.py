"""The ``model:`` section of an env preset: an existing model to prune (``rlnas/PruneModel-v0``).

Kept apart from :mod:`rlnas.config` (which embeds it) so the section and its checks read in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rlnas.errors import ConfigError


@dataclass(frozen=True)
class PretrainConfig:
    """Train the freshly built model first: ``epochs`` passes over the training split (cached under runs/)."""

    epochs: int
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-4
    optimizer: Literal["adamw", "sgd"] = "adamw"


@dataclass(frozen=True)
class ModelConfig:
    """The model to prune and how its groups may be pruned.

    ``name``: ``torchvision:NAME`` (built with ``weights=None``, the data's classes and input channels) or
    ``package.module:factory``. Its weights: ``checkpoint`` (a ``state_dict`` file, loaded with
    ``weights_only=True``) or ``pretrain`` (rlnas trains it first and caches it), else as initialised.
    ``keep_ratios``: the choices for every group; ``importance``: which channels a group keeps (Torch-Pruning's
    criteria: l1, l2, fpgm, lamp, bn_scale, random); ``round_to``: kept channels are multiples of this;
    ``ignored_layers``: module names never pruned (the classifier always is); ``small_input``: the
    small-image stem (null: for inputs up to 64x64; :mod:`rlnas.pruning.foreign.models`).
    """

    name: str
    checkpoint: str | None = None
    pretrain: PretrainConfig | None = None
    keep_ratios: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
    importance: Literal["l1", "l2", "fpgm", "lamp", "bn_scale", "random"] = "l1"
    round_to: int | None = None
    ignored_layers: tuple[str, ...] = ()
    small_input: bool | None = None


def validate_model(m: ModelConfig, latency_source: str) -> None:
    """Raise :class:`ConfigError` naming the key of the first bad value in a ``model:`` section."""
    from rlnas.pruning.foreign.models import ModelSpecError, check_model_name

    try:
        check_model_name(m.name)
    except ModelSpecError as err:
        raise ConfigError(f"model.name: {err}") from None
    if m.checkpoint is not None and m.pretrain is not None:
        raise ConfigError("model.checkpoint and model.pretrain: give one (load trained weights, or train them first)")
    if m.pretrain is not None and m.pretrain.epochs <= 0:
        raise ConfigError(f"model.pretrain.epochs: {m.pretrain.epochs!r} is not allowed; expected a positive integer")
    if not m.keep_ratios or any(not 0 < k <= 1 for k in m.keep_ratios) or len(set(m.keep_ratios)) < len(m.keep_ratios):
        raise ConfigError(
            f"model.keep_ratios: {list(m.keep_ratios)!r} is not allowed; expected distinct ratios in (0, 1]"
        )
    if m.round_to is not None and m.round_to <= 0:
        raise ConfigError(f"model.round_to: {m.round_to!r} is not allowed; expected a positive integer or null")
    if latency_source not in ("auto", "measured"):
        raise ConfigError(
            f"latency.source: {latency_source!r} is not allowed with a model section; expected auto or measured "
            "(a pruned model's latency is measured)"
        )
