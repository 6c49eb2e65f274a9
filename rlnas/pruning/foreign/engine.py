"""Prune any traceable CNN with Torch-Pruning's dependency graph, to a keep-ratio per group.

A *group* is every layer dimension coupled to one root layer's output channels (a residual addition joins
the convolutions that feed it, a depthwise convolution joins its producer, a concatenation maps into its
consumer's inputs); :func:`find_groups` lists them, the classifier and ``ignored_layers`` excluded.
:func:`prune_model` removes channels physically (each group keeps the channels its importance ranks highest)
and returns a :data:`plan`: the kept channel indices of every group. :func:`load_pruned` replays a plan on an
unpruned model of the same architecture, so a pruned checkpoint needs only the model's factory and the plan.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
import torch_pruning as tp
from torch import Tensor, nn

from rlnas.space.groups import Group, kept_count

PLAN_FORMAT = "rlnas-pruning-plan/1"
IMPORTANCES: dict[str, Callable[[], Any]] = {
    "l1": lambda: tp.importance.GroupMagnitudeImportance(p=1),
    "l2": lambda: tp.importance.GroupMagnitudeImportance(p=2),
    "fpgm": lambda: tp.importance.FPGMImportance(),
    "lamp": lambda: tp.importance.LAMPImportance(),
    "bn_scale": lambda: tp.importance.BNScaleImportance(),
    "random": lambda: tp.importance.RandomImportance(),
}
"""Channel importance criteria by preset name (Torch-Pruning's classes); ``l1`` is the default."""


class PruningError(ValueError):
    """Torch-Pruning cannot prune this model, or a plan does not fit it; the message names the layer."""


class Pruner:
    """The dependency graph of one model and its prunable groups (the model is pruned in place)."""

    def __init__(self, model: nn.Module, input_shape: Sequence[int], ignored_layers: Sequence[str] = ()) -> None:
        self.model = model
        self.input_shape = tuple(input_shape)
        names = dict(model.named_modules())
        for name in ignored_layers:
            if name not in names:
                raise PruningError(f"ignored layer {name!r} is not a module of the model; e.g. {_some(names)}")
        self.ignored = [classifier(model), *(names[n] for n in ignored_layers)]
        example = torch.zeros(1, *self.input_shape, device=_device(model))
        forward_or_explain(model, example, "before pruning")
        try:
            self.graph = tp.DependencyGraph().build_dependency(model, example_inputs=example)
        except Exception as err:
            raise PruningError(f"Torch-Pruning cannot trace the model: {_short(err)}") from None
        ignored = [m for layer in self.ignored for m in layer.modules()]
        self._groups = list(self.graph.get_all_groups(ignored_layers=ignored, root_module_types=[nn.Conv2d, nn.Linear]))
        self._groups = [g for g in self._groups if self.graph.get_out_channels(g[0].dep.target.module) > 1]
        depth = {m: i for i, m in enumerate(model.modules())}
        self._groups.sort(key=lambda g: depth[g[0].dep.target.module])  # in the model's module order
        self.groups = [self._describe(g) for g in self._groups]

    def _describe(self, group: Any) -> Group:
        root = group[0].dep.target.module
        kernel = root.kernel_size[0] if isinstance(root, nn.Conv2d) else 1
        stride = root.stride[0] if isinstance(root, nn.Conv2d) else 1
        kind = type(root).__name__ + ("/dw" if isinstance(root, nn.Conv2d) and root.groups > 1 else "")
        outputs = [dep.target.module for dep, _ in group if self.graph.is_out_channel_pruning_fn(dep.handler)]
        layers = tuple(self.graph._module2name[m] for m in outputs if isinstance(m, nn.Conv2d | nn.Linear))
        return Group(self.graph._module2name[root], self.graph.get_out_channels(root), self._channel_groups(group),
                     kind, kernel, stride, layers)  # fmt: skip

    def _channel_groups(self, group: Any) -> int:
        """How many equal channel groups the group's grouped convolutions impose (1: none)."""
        counts = [1]
        for dep, _ in group:
            module = dep.target.module
            if isinstance(module, nn.Conv2d) and module.groups == module.out_channels == module.in_channels:
                continue  # depthwise: every channel is its own group, any subset stays valid
            pruner = self.graph.get_pruner_of_module(module)
            if pruner is None:
                continue
            out = self.graph.is_out_channel_pruning_fn(dep.handler)
            counts.append((pruner.get_out_channel_groups if out else pruner.get_in_channel_groups)(module) or 1)
        return max(counts)

    def kept_indices(
        self, keeps: float | Sequence[float], importance: str = "l1", round_to: int | None = None
    ) -> list[list[int]]:
        """For every group, the channels its keep-ratio (one for all when a number) leaves: the most important
        by ``importance``."""
        keeps = [float(keeps)] * len(self.groups) if isinstance(keeps, int | float) else keeps
        if len(keeps) != len(self.groups):
            raise PruningError(f"a plan needs one keep-ratio per group: {len(self.groups)} groups, {len(keeps)} given")
        scorer = IMPORTANCES[importance]()
        kept = []
        for group, info, keep in zip(self._groups, self.groups, keeps, strict=True):
            n = kept_count(info, keep, round_to)
            if n == info.channels:
                kept.append(list(range(info.channels)))
                continue
            size = info.channels // info.channel_groups
            score = scorer(group)
            if score is None:
                raise PruningError(
                    f"importance {importance!r} cannot rank the group of layer {info.name!r} (bn_scale needs a "
                    "BatchNorm in every group); use l1"
                )
            score = score.detach().float().cpu()
            slots = torch.topk(score.view(info.channel_groups, size).mean(0), n // info.channel_groups).indices
            kept.append(sorted(int(s) + g * size for g in range(info.channel_groups) for s in slots.tolist()))
        return kept

    def prune(self, kept: Sequence[Sequence[int]]) -> None:
        """Remove every channel not in ``kept`` (one index list per group), then check a forward pass."""
        for info, keep in zip(self.groups, kept, strict=True):
            root = self.model.get_submodule(info.name)
            channels = self.graph.get_out_channels(root)
            if channels != info.channels:
                raise PruningError(
                    f"layer {info.name!r} has {channels} output channels; the plan expects {info.channels}"
                )
            drop = sorted(set(range(channels)) - {int(i) for i in keep})
            if not drop:
                continue
            handler = self.graph.get_pruner_of_module(root).prune_out_channels
            try:
                self.graph.get_pruning_group(root, handler, drop).prune()
            except Exception as err:
                raise PruningError(
                    f"Torch-Pruning cannot prune the group of layer {info.name!r}: {_short(err)}"
                ) from None
        example = torch.zeros(2, *self.input_shape, device=_device(self.model))
        forward_or_explain(self.model, example, "after pruning")


def prune_model(
    model: nn.Module,
    input_shape: Sequence[int],
    keeps: float | Sequence[float],
    *,
    importance: str = "l1",
    round_to: int | None = None,
    ignored_layers: Sequence[str] = (),
) -> tuple[nn.Module, dict]:
    """A pruned copy of ``model`` (every group keeping its ``keeps`` ratio, or all the same ratio when ``keeps`` is
    a number) and its plan; ``model`` is unchanged."""
    pruned = copy.deepcopy(model)
    pruner = Pruner(pruned, input_shape, ignored_layers)
    kept = pruner.kept_indices(keeps, importance, round_to)
    pruner.prune(kept)
    return pruned, make_plan(pruner.groups, kept, input_shape)


def make_plan(groups: Sequence[Group], kept: Sequence[Sequence[int]], input_shape: Sequence[int]) -> dict:
    """The JSON-ready plan: format, input shape, and each group's root layer, channels and kept indices."""
    return {
        "format": PLAN_FORMAT,
        "input_shape": list(input_shape),
        "groups": [
            {"name": g.name, "channels": g.channels, "keep": list(k)} for g, k in zip(groups, kept, strict=True)
        ],
    }


def load_pruned(model: nn.Module, plan: dict, ignored_layers: Sequence[str] = ()) -> nn.Module:
    """Prune the unpruned ``model`` in place to ``plan`` (from :func:`prune_model`) and return it; its
    ``state_dict`` then loads the pruned model's weights."""
    if not isinstance(plan, dict) or plan.get("format") != PLAN_FORMAT:
        raise PruningError(f"not a pruning plan: expected a dict with format {PLAN_FORMAT!r}")
    pruner = Pruner(model, plan["input_shape"], ignored_layers)
    by_name = {g["name"]: g["keep"] for g in plan["groups"]}
    mine = {g.name for g in pruner.groups}
    if set(by_name) != mine:
        extra = sorted(set(by_name) ^ mine)[0]
        raise PruningError(f"the plan's groups do not match this model's (e.g. {extra!r}); build the same model first")
    pruner.prune([by_name[g.name] for g in pruner.groups])
    return model


def classifier(model: nn.Module) -> nn.Module:
    """The model's last ``nn.Linear`` or ``nn.Conv2d`` (its classifier, whose outputs are never pruned)."""
    layers = [m for m in model.modules() if isinstance(m, nn.Linear | nn.Conv2d)]
    if not layers:
        raise PruningError("the model has no nn.Conv2d or nn.Linear layer to prune")
    return layers[-1]


def forward_or_explain(model: nn.Module, x: Tensor, when: str) -> Tensor:
    """``model(x)`` in eval mode; a forward that fails raises :class:`PruningError` naming the layer it failed
    in (or the last layer that ran, when the failing code is outside any layer)."""
    was_training = model.training
    model.eval()
    try:
        with _tracking(model) as where, torch.no_grad():
            try:
                return model(x)
            except Exception as err:
                layer = where.running[-1] if where.running else where.finished
                place = f"in layer {layer!r}" if where.running else f"after layer {layer!r}"
                hint = "; list that layer in model.ignored_layers" if when == "after pruning" else ""
                raise PruningError(f"the model's forward fails {when} {place}: {_short(err)}{hint}") from None
    finally:
        model.train(was_training)


class _Where:
    def __init__(self) -> None:
        self.running: list[str] = []
        self.finished = "<input>"


@contextmanager
def _tracking(model: nn.Module) -> Iterator[_Where]:
    where, handles = _Where(), []
    for name, module in model.named_modules():
        if name:
            handles.append(module.register_forward_pre_hook(lambda *_, n=name: where.running.append(n)))
            handles.append(module.register_forward_hook(lambda *_, n=name: _finish(where, n)))
    try:
        yield where
    finally:
        for handle in handles:
            handle.remove()


def _finish(where: _Where, name: str) -> None:
    where.running.pop()
    where.finished = name


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _short(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return f"{type(err).__name__}: {text[:300]}"


def _some(names: dict[str, nn.Module]) -> str:
    return ", ".join(repr(n) for n in list(names)[1:4])
