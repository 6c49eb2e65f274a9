"""Operator rules: a toy operator registered from this file alone is pruned, masked in the supernet and timed by
the latency table, with nothing in the package changed."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from rlnas.config import LatencyConfig, SpaceConfig, StageConfig, load_env_preset
from rlnas.latency.build import build_table
from rlnas.latency.layers import child_layer_configs, enumerate_layers
from rlnas.pruning import build_model, kept_channels, l1_importance, prune_child, top_channels
from rlnas.space import Arch, SearchSpace
from rlnas.space.ops import OPERATORS, ConvBN
from rlnas.space.rules import RULES, ChannelSurgery, LayerShape, MaskFor, masked, rule_for
from rlnas.training.data import Split
from rlnas.training.supernet import Supernet, train_supernet


class Bottleneck(nn.Module):
    """A 1x1 reduction to ``c_out`` channels, then a 3x3 convolution at the stride; the reduced channels prune."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.reduce = ConvBN(c_in, c_out, 1)
        self.conv = ConvBN(c_out, c_out, 3, stride)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(self.reduce(x))


class BottleneckRule:
    """A keep-ratio keeps the top reduced channels; the output keeps its full width."""

    def prunable(self, module: Bottleneck) -> ConvBN:
        return module.reduce

    def prune(self, module: Bottleneck, in_idx: Tensor, keep: float, surgery: ChannelSurgery) -> Tensor:
        hidden = surgery.keep_top(module.reduce, in_idx, keep)
        out_idx = torch.arange(module.conv.conv.out_channels)
        surgery.restrict(module.conv, out_idx, hidden)
        return out_idx

    def masked_forward(
        self, module: Bottleneck, x: Tensor, in_mask: Tensor | None, mask_for: MaskFor
    ) -> tuple[Tensor, Tensor | None]:
        return module.conv(masked(module.reduce(x), mask_for(module.reduce))), None

    def shape(self, module: Bottleneck, c_in: int) -> LayerShape:
        return LayerShape(module.reduce.conv.in_channels, module.conv.conv.out_channels, module.conv.conv.in_channels)


@pytest.fixture
def toy_space(monkeypatch) -> SearchSpace:
    """A space whose operators include ``bottleneck``, registered for this test only."""
    monkeypatch.setitem(OPERATORS, "bottleneck", Bottleneck)
    monkeypatch.setitem(RULES, Bottleneck, BottleneckRule())
    config = SpaceConfig(
        stem_width=4,
        stages=(StageConfig(layers=2, width=6, stride=1), StageConfig(layers=1, width=10, stride=2)),
        operators=("conv3x3", "bottleneck", "skip"),
        keep_ratios=(0.5, 1.0),
    )
    return SearchSpace(config, (1, 8, 8), 10)


def test_a_registered_operator_is_pruned_by_its_rule(toy_space):
    arch = Arch(("bottleneck", "bottleneck", "conv3x3"), (0.5, 0.5, 1.0))
    torch.manual_seed(0)
    model = build_model(toy_space, arch).eval()
    kept = [top_channels(l1_importance(layer.reduce.conv), kept_channels(6, 0.5)) for layer in model.layers[:2]]
    x = torch.randn(3, *toy_space.input_shape)
    handles = []
    for layer, idx in zip(model.layers[:2], kept, strict=True):  # zero the reduced channels pruning removes
        mask = torch.zeros(6).index_fill_(0, idx, 1.0).view(1, -1, 1, 1)
        handles.append(layer.reduce.register_forward_hook(lambda _m, _i, out, mask=mask: out * mask))
    with torch.no_grad():
        reference = model(x)
    for h in handles:
        h.remove()

    pruned = prune_child(model).eval()
    for layer, c_in in zip(pruned.layers[:2], (4, 6), strict=True):
        reduce, conv = layer.reduce.conv, layer.conv.conv
        assert (reduce.in_channels, reduce.out_channels, conv.in_channels, conv.out_channels) == (c_in, 3, 3, 6)
    with torch.no_grad():
        torch.testing.assert_close(pruned(x), reference, rtol=1e-4, atol=1e-5)
    rebuilt = build_model(pruned.arch_json())  # the pruned shape, from the architecture JSON
    rebuilt.load_state_dict(pruned.state_dict())


def test_a_registered_operator_is_masked_in_the_supernet_as_its_pruned_child(toy_space):
    supernet = Supernet(toy_space)
    assert {id(layer["bottleneck"].reduce.conv) for layer in supernet.layers} <= {
        id(c) for c in supernet.prunable_convs()
    }
    data = Split(torch.randn(64, 1, 8, 8), torch.randint(0, 10, (64,)))
    cfg = load_env_preset("digits").supernet
    train_supernet(supernet, data, dataclasses.replace(cfg, steps=4, batch_size=32), progress_bar=False)
    supernet.eval()
    x = torch.randn(4, 1, 8, 8)
    rng = np.random.default_rng(0)
    archs = [toy_space.uniform("bottleneck", k) for k in toy_space.keep_ratios] + [
        toy_space.sample(rng) for _ in range(8)
    ]
    for arch in archs:
        with torch.no_grad():
            torch.testing.assert_close(supernet(x, arch), supernet.extract(arch).eval()(x), msg=str(arch))


def test_a_registered_operator_gets_latency_table_entries(toy_space):
    enum = enumerate_layers(toy_space)
    toy = [c for c in enum.configs if c.op == "bottleneck"]
    assert {(c.position, c.hidden) for c in toy} >= {(0, 3), (0, 6), (2, 5), (2, 10)}
    rng = np.random.default_rng(1)
    for arch in [toy_space.uniform("bottleneck", 0.5), *(toy_space.sample(rng) for _ in range(10))]:
        child = prune_child(build_model(toy_space, arch))
        assert child_layer_configs(child, toy_space) == enum.arch_configs(arch), str(arch)
    cfg = LatencyConfig(device="cpu", threads=1, batch_size=1, warmup=0, repeats=1)
    table = build_table(toy_space, cfg, rounds=1, calibration=0, progress=False)
    assert all(table.entries[c] > 0 for c in toy)
    arch = toy_space.uniform("bottleneck", 0.5)
    assert table.predict(arch) == pytest.approx(sum(table.entries[c] for c in table.layer_configs(arch)))


def test_an_operator_without_a_rule_is_named():
    with pytest.raises(TypeError, match=r"no operator rule for Bottleneck: register one"):
        rule_for(Bottleneck(2, 2, 1))
