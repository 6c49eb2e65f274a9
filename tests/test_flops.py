"""The hook-based FLOP count equals torch.utils.flop_counter's on children of every operator, pruned or not."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from rlnas.latency import count_flops
from rlnas.pruning import build_model, prune_child
from rlnas.space import Arch


def reference_flops(model: torch.nn.Module, input_shape: tuple[int, ...]) -> int:
    model.eval()
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, *input_shape))
    return int(counter.get_total_flops())


@pytest.mark.parametrize("pruned", [False, True])
def test_flops_match_torch_flop_counter_for_every_operator(tiny_space, pruned):
    rng = np.random.default_rng(0)
    archs = [Arch((op,) * tiny_space.num_layers, (0.5,) * tiny_space.num_layers) for op in tiny_space.operators]
    archs += [tiny_space.sample(rng) for _ in range(10)]
    for arch in archs:
        model = build_model(tiny_space, arch)
        if pruned:
            prune_child(model, arch)
        model.train()
        flops = count_flops(model, tiny_space.input_shape)
        assert model.training  # the mode it found is restored
        assert flops == reference_flops(model, tiny_space.input_shape) > 0, str(arch)
