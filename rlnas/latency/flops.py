"""Count FLOPs (torch.utils.flop_counter: 2 per multiply-add in convolutions and matmuls) and parameters."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@torch.inference_mode()
def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """FLOPs of one forward pass of a single example."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, *input_shape, device=device))
    model.train(was_training)
    return int(counter.get_total_flops())


def count_params(model: nn.Module) -> int:
    """Number of parameters (BatchNorm running statistics excluded)."""
    return sum(p.numel() for p in model.parameters())
