"""Count FLOPs (2 per multiply-add in convolutions and linear layers, as ``torch.utils.flop_counter`` counts
them) and parameters.

``torch.utils.flop_counter.FlopCounterMode`` intercepts every operator of a forward pass in Python, which took
about 0.19 s per child of the default preset: a fifth of a supernet evaluation step. Children are built only of
``nn.Conv2d`` and ``nn.Linear`` layers plus operators it counts as free (BatchNorm, activations, pooling,
additions), so forward hooks on those two layer types give the same count from their output shapes in about a
millisecond; ``tests/test_flops.py`` checks the two agree on children of every operator.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def layer_flops(module: nn.Module, output: Tensor) -> int:
    """FLOPs of one ``nn.Conv2d`` or ``nn.Linear`` call that produced ``output``."""
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return 2 * output.numel() * (module.in_channels // module.groups) * kh * kw
    return 2 * output.numel() * module.in_features  # nn.Linear


@torch.inference_mode()
def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """FLOPs of one forward pass of a single example."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total = 0

    def hook(module: nn.Module, _inputs: tuple[Tensor, ...], output: Tensor) -> None:
        nonlocal total
        total += layer_flops(module, output)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    try:
        model(torch.zeros(1, *input_shape, device=device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return total


def count_params(model: nn.Module) -> int:
    """Number of parameters (BatchNorm running statistics excluded)."""
    return sum(p.numel() for p in model.parameters())
