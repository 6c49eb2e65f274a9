"""The cheapest child of a search space, so that a budget no child can meet is refused before a search starts.

Every layer at the narrowest keep-ratio, and in each layer the operator with the fewest FLOPs (with every width
fixed at the narrowest, a layer's FLOPs do not depend on the other layers' operators).
For a latency budget, the candidates found on the way are timed with the preset's latency source and the fastest
wins: a proxy for the true minimum that errs on the cheap side, so a reachable target is never refused.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import nn

from rlnas.budget import Budget
from rlnas.config import ConfigError, EnvPreset
from rlnas.latency.flops import count_flops, layer_flops
from rlnas.latency.source import latency_source
from rlnas.latency.timing import pruned_children
from rlnas.space import Arch, ChildNet, SearchSpace

TOLERANCE = 0.95
"""A target is refused below this fraction of the cheapest child's cost (timings vary by a few percent)."""


@dataclass(frozen=True)
class Cheapest:
    """The cheapest child found and its cost in the budget's unit."""

    arch: Arch
    cost: float


def _pruned(space: SearchSpace, arch: Arch) -> ChildNet:
    return pruned_children(space, [arch], seed=0)[0]


def _layer_mflops(model: ChildNet, input_shape: tuple[int, ...]) -> list[float]:
    """MFLOPs of each searchable layer of ``model`` (convolutions and linear layers, as :func:`count_flops`)."""
    per_layer = [0.0] * len(model.layers)
    handles = []
    for i, layer in enumerate(model.layers):
        for module in layer.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                hook = functools.partial(_add_flops, per_layer, i)
                handles.append(module.register_forward_hook(hook))
    try:
        with torch.inference_mode():
            model(torch.zeros(1, *input_shape))
    finally:
        for handle in handles:
            handle.remove()
    return per_layer


def _add_flops(per_layer: list[float], i: int, module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
    per_layer[i] += layer_flops(module, output) / 1e6


def cheapest_child(preset: EnvPreset, space: SearchSpace, budget: Budget) -> Cheapest:
    """The cheapest child of ``space`` under ``budget``'s cost (latency from the preset's latency source)."""
    narrowest = min(space.keep_ratios)
    uniform = [space.uniform(op, narrowest) for op in space.operators]
    per_layer = [_layer_mflops(_pruned(space, arch), space.input_shape) for arch in uniform]
    cheapest_ops = [min(range(len(uniform)), key=lambda o: per_layer[o][i]) for i in range(space.num_layers)]
    mixed = Arch(tuple(space.operators[o] for o in cheapest_ops), uniform[0].keeps)
    candidates = [*uniform, mixed]
    if budget.cost == "flops":
        costs = {arch: count_flops(_pruned(space, arch), space.input_shape) / 1e6 for arch in candidates}
    else:
        latency = latency_source(preset, space)
        costs = {arch: float(latency(_pruned(space, arch), arch)) for arch in candidates}
    arch = min(costs, key=costs.get)
    return Cheapest(arch, costs[arch])


def check_reachable(preset: EnvPreset, space: SearchSpace, budget: Budget) -> None:
    """Raise :class:`ConfigError` when even the cheapest child of ``space`` costs more than ``budget`` allows."""
    cheapest = cheapest_child(preset, space, budget)
    if budget.target < TOLERANCE * cheapest.cost:
        flag = "--target-latency" if budget.cost == "latency" else "--set reward.target_mflops="
        raise ConfigError(
            f"no child of this space can meet the budget {budget.describe()}: the cheapest, {cheapest.arch}, costs "
            f"{cheapest.cost:.4g} {budget.unit}; give {flag} of at least {cheapest.cost:.3g}"
        )
