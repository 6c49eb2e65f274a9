"""Build the model a prune preset names: ``torchvision:NAME`` or a user's ``package.module:factory``.

torchvision models are built with ``weights=None`` and the data's classes and input channels. For small images
(side at most :data:`SMALL_INPUT_SIDE`, e.g. 28x28 Fashion-MNIST or 32x32 CIFAR) the stem is adapted as
CIFAR ResNets do: the first convolution becomes 3x3 with stride 1, and a max-pool before the second
convolution (ResNet's, DenseNet's, VGG's first) is removed, so the network does not shrink a 28x28 image to
nothing. A factory is called with ``num_classes`` and ``in_channels`` if it accepts them and is not adapted.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

SMALL_INPUT_SIDE = 64
"""Inputs at most this many pixels high and wide get the small-image stem."""


class ModelSpecError(ValueError):
    """A model name, factory or checkpoint that cannot be used; the message says what to give instead."""


def build_named_model(
    name: str, input_shape: tuple[int, int, int], num_classes: int, small_input: bool | None = None
) -> nn.Module:
    """A freshly initialised model for ``name`` (``torchvision:NAME`` or ``package.module:factory``).

    ``small_input``: adapt a torchvision stem for small images (None: when the input side is at most
    :data:`SMALL_INPUT_SIDE`).
    """
    source, sep, attr = name.partition(":")
    if not sep or not source or not attr:
        raise ModelSpecError(f"model {name!r}: expected torchvision:NAME or package.module:factory")
    channels = input_shape[0]
    if source == "torchvision":
        model = _torchvision_model(attr, num_classes)
        small = max(input_shape[1:]) <= SMALL_INPUT_SIDE if small_input is None else small_input
        adapt_stem(model, channels, small)
        return model
    factory = import_factory(name)
    accepted = inspect.signature(factory).parameters
    kwargs = {k: v for k, v in (("num_classes", num_classes), ("in_channels", channels)) if k in accepted}
    model = factory(**kwargs)
    if not isinstance(model, nn.Module):
        raise ModelSpecError(f"model {name!r}: the factory returned {type(model).__name__}, not a torch nn.Module")
    return model


def torchvision_names() -> list[str]:
    """The classification models torchvision can build."""
    import torchvision

    return torchvision.models.list_models(module=torchvision.models)


def check_model_name(name: str) -> None:
    """Raise :class:`ModelSpecError` unless ``name`` names a torchvision model or an importable factory."""
    source, sep, attr = name.partition(":")
    if not sep or not source or not attr:
        raise ModelSpecError(
            f"model {name!r}: expected torchvision:NAME (e.g. torchvision:resnet18) or package.module:factory"
        )
    if source != "torchvision":
        import_factory(name)
        return
    names = torchvision_names()
    if attr not in names:
        close = difflib.get_close_matches(attr, names, n=3)
        hint = f"did you mean {', '.join(close)}?" if close else "see torchvision.models.list_models()"
        raise ModelSpecError(f"unknown torchvision model {attr!r}: {hint}")


def import_factory(name: str) -> Callable[..., nn.Module]:
    """The callable ``package.module:factory`` names."""
    module_name, _, attr = name.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise ModelSpecError(f"model {name!r} cannot be imported ({err}); is the package on PYTHONPATH?") from None
    if not callable(factory):
        raise ModelSpecError(f"model {name!r} is not callable; name a function or class that returns an nn.Module")
    return factory


def _torchvision_model(name: str, num_classes: int) -> nn.Module:
    import torchvision

    check_model_name(f"torchvision:{name}")
    return torchvision.models.get_model(name, weights=None, num_classes=num_classes)


def adapt_stem(model: nn.Module, in_channels: int, small: bool) -> None:
    """Give the first convolution ``in_channels`` inputs; with ``small``, make it 3x3 stride 1 and drop a
    max-pool that comes before the second convolution."""
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        return
    first_name, first = convs[0]
    kernel = (3, 3) if small and max(first.kernel_size) > 3 else first.kernel_size
    stride = (1, 1) if small else first.stride
    padding = (kernel[0] // 2, kernel[1] // 2) if kernel != first.kernel_size else first.padding
    if in_channels != first.in_channels or kernel != first.kernel_size or stride != first.stride:
        stem = nn.Conv2d(in_channels, first.out_channels, kernel, stride, padding, bias=first.bias is not None)
        model.set_submodule(first_name, stem)
    if not small or len(convs) < 2:
        return
    order = [n for n, _ in model.named_modules()]
    second = order.index(convs[1][0])
    for index, (name, module) in enumerate(model.named_modules()):
        if isinstance(module, nn.MaxPool2d) and index < second:
            model.set_submodule(name, nn.Identity())
            return


def load_checkpoint(model: nn.Module, path: str | Path) -> None:
    """Load a ``state_dict`` (or ``{"state_dict": ...}`` / ``{"model": ...}``) saved with ``torch.save``.

    Read with ``torch.load(weights_only=True)``: tensors and plain containers only, never pickled code.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelSpecError(f"model.checkpoint {str(path)!r} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, ... for files it will not load safely
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelSpecError(
            f"model.checkpoint {str(path)!r} cannot be loaded with weights_only=True: {first}"
        ) from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ModelSpecError(f"model.checkpoint {str(path)!r} holds {type(state).__name__}, not a state_dict")
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    found = (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", wrong))
    problems = [f"{len(v)} {what} (first: {v[0]})" for what, v in found if v]
    if problems:
        raise ModelSpecError(
            f"model.checkpoint {str(path)!r} does not fit the model: {'; '.join(problems)}; "
            "check model.name, the data set's classes and input channels, and the stem adaptation (model.small_input)"
        )
    model.load_state_dict(state)
