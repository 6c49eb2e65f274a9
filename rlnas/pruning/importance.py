"""Channel importance: which channels a keep-ratio keeps."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def l1_importance(conv: nn.Conv2d) -> Tensor:
    """L1 norm of each output channel's filter (Li et al., 2017)."""
    return conv.weight.detach().abs().flatten(1).sum(dim=1)


def top_channels(importance: Tensor, count: int) -> Tensor:
    """Indices of the ``count`` most important channels, in ascending index order."""
    return torch.sort(torch.topk(importance, count).indices).values
