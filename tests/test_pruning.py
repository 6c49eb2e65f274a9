"""Structured pruning: channel counts per the documented rules, real removal, top-L1 choice, exact surgery."""

from __future__ import annotations

import copy
import json
import re

import numpy as np
import pytest
import torch
from torch import nn

from rlnas.latency import count_flops, count_params
from rlnas.pruning import build_model, kept_channels, l1_importance, prune_child, top_channels
from rlnas.space import Arch, SearchSpace
from rlnas.space.ops import OPERATORS, ConvBN, MBConv, Pool

KEEPS = (0.25, 0.5, 1.0)


def expected_count(channels: int, keep: float) -> int:
    """The documented rule (rlnas/pruning/prune.py): at least one channel, ``round(n * keep)`` otherwise."""
    return max(1, round(channels * keep))


def perturbed_model(space: SearchSpace, arch: Arch, seed: int = 0) -> nn.Module:
    """A full-width child with distinct per-channel weight norms and populated BatchNorm statistics, in eval mode."""
    torch.manual_seed(seed)
    model = build_model(space, arch)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.mul_(torch.empty(m.out_channels, 1, 1, 1).uniform_(0.3, 3.0))
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.2)
        model.train()
        model(torch.randn(16, *space.input_shape))  # populate the running statistics
    return model.eval()


def pruned_copy(model: nn.Module, keeps) -> nn.Module:
    return prune_child(copy.deepcopy(model), keeps).eval()


def expected_layout(space: SearchSpace, arch: Arch) -> tuple[list[dict[str, tuple[int, int]]], int]:
    """Per layer, ``{submodule: (in_channels, out_channels)}`` after pruning, from the documented rules alone."""
    c = space.config.stem_width
    layout = []
    for slot, op, keep in zip(space.slots, arch.ops, arch.keeps, strict=True):
        shape_kept = slot.keeps_shape
        if op.startswith("conv"):
            out = expected_count(slot.c_out, keep)
            layout.append({"conv": (c, out)})
        elif op.startswith("sep"):
            out = expected_count(slot.c_out, keep)
            layout.append({"depthwise.conv": (c, c), "pointwise.conv": (c, out)})
        elif op.startswith("mbconv"):
            expansion = int(re.match(r"mbconv(\d+)_k\d+", op).group(1))
            hidden = expected_count(slot.c_in * expansion, keep)
            out = c if shape_kept else slot.c_out
            layout.append(
                {"expand.conv": (c, hidden), "depthwise.conv": (hidden, hidden), "project.conv": (hidden, out)}
            )
        elif op.endswith("pool3x3"):
            if slot.c_in == slot.c_out:
                out = c
                layout.append({})
            else:
                out = expected_count(slot.c_out, keep)
                layout.append({"projection.conv": (c, out)})
        elif op == "skip":
            if shape_kept:
                out = c
                layout.append({})
            else:
                out = expected_count(slot.c_out, keep)
                layout.append({"conv": (c, out)})
        else:  # a new operator needs its rule written down here
            raise AssertionError(f"no documented pruning rule for {op}")
        c = out
    return layout, c


def has_prunable_layer(space: SearchSpace, op: str) -> bool:
    return any(expected_layout(space, space.uniform(op, 1.0))[0])


def assert_plain_modules(model: nn.Module) -> None:
    """No pruning masks, re-parametrisations or hooks; every layer's weights match its channel attributes."""
    for name, m in model.named_modules():
        assert not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks, name
        assert not getattr(m, "parametrizations", None), name
        for pname, _ in m.named_parameters(recurse=False):
            assert not pname.endswith("_orig"), f"{name}.{pname}"
        for bname, _ in m.named_buffers(recurse=False):
            assert not bname.endswith("_mask"), f"{name}.{bname}"
        assert type(m).__module__.startswith(("torch.nn.", "rlnas.space.")), f"{name}: {type(m)}"
        if isinstance(m, nn.Conv2d):
            k = m.kernel_size
            assert m.weight.shape == (m.out_channels, m.in_channels // m.groups, *k), name
            assert m.groups in (1, m.in_channels), name
        elif isinstance(m, nn.BatchNorm2d):
            for t in (m.weight, m.bias, m.running_mean, m.running_var):
                assert t.shape == (m.num_features,), name
        elif isinstance(m, nn.Linear):
            assert m.weight.shape == (m.out_features, m.in_features), name
    # the input channels of every ConvBN/BN pair agree
    for name, m in model.named_modules():
        if isinstance(m, ConvBN):
            assert m.conv.out_channels == m.bn.num_features, name


def check_layout(model: nn.Module, space: SearchSpace, arch: Arch) -> None:
    layout, final = expected_layout(space, arch)
    for i, (layer, expected) in enumerate(zip(model.layers, layout, strict=True)):
        modules = dict(layer.named_modules())
        if not expected:
            assert isinstance(layer, nn.Identity | Pool) and getattr(layer, "projection", None) is None, i
        for sub, (c_in, c_out) in expected.items():
            conv = modules[sub]
            assert (conv.in_channels, conv.out_channels) == (c_in, c_out), f"layer {i} ({arch.ops[i]}) {sub}"
    assert model.classifier.in_features == final


# --------------------------------------------------------------------------------------- per operator/keep


def test_kept_channels_rule():
    assert kept_channels(8, 0.25) == 2
    assert kept_channels(12, 0.5) == 6
    assert kept_channels(24, 1.0) == 24
    assert kept_channels(3, 0.25) == 1  # round(0.75) == 1
    assert kept_channels(2, 0.1) == 1  # never zero channels
    assert kept_channels(10, 0.26) == 3


@pytest.mark.parametrize("keep", KEEPS)
@pytest.mark.parametrize("op", list(OPERATORS))
def test_uniform_child_prunes_to_the_documented_widths(tiny_space, op, keep):
    arch = tiny_space.uniform(op, keep)
    model = perturbed_model(tiny_space, arch)
    x = torch.randn(5, *tiny_space.input_shape)
    with torch.no_grad():
        before = model(x)
    params, flops = count_params(model), count_flops(model, tiny_space.input_shape)

    pruned = pruned_copy(model, arch)  # keeps taken from the Arch
    check_layout(pruned, tiny_space, arch)
    assert_plain_modules(pruned)
    with torch.no_grad():
        after = pruned(x)
    assert after.shape == before.shape == (5, tiny_space.num_classes)
    assert torch.isfinite(after).all()

    new_params, new_flops = count_params(pruned), count_flops(pruned, tiny_space.input_shape)
    if keep < 1 and has_prunable_layer(tiny_space, op):
        assert new_params < params and new_flops < flops
    else:
        assert (new_params, new_flops) == (params, flops)
    if keep == 1.0:
        torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-6)


def test_every_operator_has_something_to_prune_in_the_tiny_space(tiny_space):
    # slot 0 widens, so even skip and pooling get a prunable projection there
    assert all(has_prunable_layer(tiny_space, op) for op in OPERATORS)


def test_keeps_default_to_the_models_own_architecture(tiny_space):
    arch = Arch(("conv3x3", "sep3x3", "mbconv6_k3", "skip"), (0.5, 0.25, 0.5, 1.0))
    model = perturbed_model(tiny_space, arch)
    pruned = prune_child(copy.deepcopy(model))
    check_layout(pruned, tiny_space, arch)
    explicit = prune_child(copy.deepcopy(model), arch.keeps)
    x = torch.randn(2, *tiny_space.input_shape)
    with torch.no_grad():
        torch.testing.assert_close(pruned.eval()(x), explicit.eval()(x))


def test_wrong_number_of_keeps_is_refused(tiny_space):
    model = build_model(tiny_space, tiny_space.uniform("conv3x3", 1.0))
    with pytest.raises(ValueError, match="3 keep-ratios given for 4 layers"):
        prune_child(model, (0.5, 0.5, 0.5))


def test_pruning_twice_is_refused(tiny_space):
    model = prune_child(build_model(tiny_space, tiny_space.uniform("conv3x3", 0.5)))
    with pytest.raises(ValueError, match="already pruned"):
        prune_child(model)


# ------------------------------------------------------------------------ rebuilding from architecture JSON


@pytest.mark.parametrize("op", list(OPERATORS))
def test_pruned_child_rebuilds_from_its_arch_json_and_state_dict(tiny_space, op):
    arch = Arch((op, "mbconv3_k3", op, "sep3x3"), (0.25, 0.5, 0.5, 0.25))
    trained = pruned_copy(perturbed_model(tiny_space, arch), arch.keeps)
    rebuilt = build_model(trained.arch_json())  # the pruned shape: the JSON records the keep-ratios
    assert rebuilt.pruned_keeps == arch.keeps
    rebuilt.load_state_dict(trained.state_dict())  # strict: every tensor has the same shape
    x = torch.randn(3, *tiny_space.input_shape)
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(x), trained(x))


def test_arch_json_of_a_full_child_rebuilds_it_full_width(tiny_space):
    arch = Arch(("conv3x3", "sep3x3", "mbconv6_k3", "skip"), (0.5, 0.25, 0.5, 1.0))
    model = perturbed_model(tiny_space, arch)
    data = json.loads(model.arch_json())
    assert data["pruned_keeps"] is None and data["arch"] == str(arch)
    rebuilt = build_model(data)
    rebuilt.load_state_dict(model.state_dict())
    assert count_params(build_model(data, pruned=True)) < count_params(rebuilt) == count_params(model)


def test_build_model_with_a_space_needs_an_architecture(tiny_space):
    with pytest.raises(TypeError, match="an architecture is needed"):
        build_model(tiny_space)


# --------------------------------------------------------------------------------- which channels are kept


def top_l1(weight: torch.Tensor, count: int) -> list[int]:
    """The indices of the ``count`` output channels with the largest L1 norm, ascending (computed here)."""
    norms = weight.detach().abs().reshape(weight.shape[0], -1).sum(1).tolist()
    ranked = sorted(range(len(norms)), key=lambda i: -norms[i])
    kept = sorted(ranked[:count])
    assert min(norms[i] for i in kept) > max((norms[i] for i in ranked[count:]), default=-1.0), "ties"
    return kept


def test_conv_keeps_the_highest_l1_channels_with_their_weights(tiny_space):
    arch = Arch(("conv3x3", "conv3x3", "skip", "skip"), (0.5, 0.25, 1.0, 1.0))
    model = perturbed_model(tiny_space, arch, seed=1)
    pruned = pruned_copy(model, arch)
    old0, new0 = model.layers[0], pruned.layers[0]
    width = tiny_space.slots[0].c_out
    n0, n1 = expected_count(width, 0.5), expected_count(width, 0.25)

    kept0 = top_l1(old0.conv.weight, n0)
    assert top_channels(l1_importance(old0.conv), n0).tolist() == kept0
    torch.testing.assert_close(new0.conv.weight, old0.conv.weight[kept0], rtol=0, atol=0)
    for attr in ("weight", "bias", "running_mean", "running_var"):
        torch.testing.assert_close(getattr(new0.bn, attr), getattr(old0.bn, attr)[kept0], rtol=0, atol=0)

    # the next conv reads only the surviving channels, in the same order, and keeps whole original filters
    old1, new1 = model.layers[1], pruned.layers[1]
    assert new1.conv.weight.shape == (n1, n0, 3, 3)
    rows = [old1.bn.weight.tolist().index(w) for w in new1.bn.weight.tolist()]
    assert rows == sorted(set(rows))
    torch.testing.assert_close(new1.conv.weight, old1.conv.weight[rows][:, kept0], rtol=0, atol=0)
    torch.testing.assert_close(new1.bn.running_var, old1.bn.running_var[rows], rtol=0, atol=0)


def test_mbconv_keeps_the_highest_l1_hidden_channels(tiny_space):
    arch = Arch(("mbconv3_k3", "skip", "skip", "skip"), (0.5, 1.0, 1.0, 1.0))
    model = perturbed_model(tiny_space, arch, seed=2)
    pruned = pruned_copy(model, arch)
    old, new = model.layers[0], pruned.layers[0]
    assert isinstance(new, MBConv) and not new.residual  # slot 0 widens

    n_hidden = expected_count(tiny_space.slots[0].c_in * 3, 0.5)
    hidden = top_l1(old.expand.conv.weight, n_hidden)
    torch.testing.assert_close(new.expand.conv.weight, old.expand.conv.weight[hidden], rtol=0, atol=0)
    torch.testing.assert_close(new.expand.bn.running_mean, old.expand.bn.running_mean[hidden], rtol=0, atol=0)
    torch.testing.assert_close(new.depthwise.conv.weight, old.depthwise.conv.weight[hidden], rtol=0, atol=0)
    assert new.depthwise.conv.groups == n_hidden
    torch.testing.assert_close(new.project.conv.weight, old.project.conv.weight[:, hidden], rtol=0, atol=0)
    torch.testing.assert_close(new.project.bn.weight, old.project.bn.weight, rtol=0, atol=0)  # output untouched


def test_residual_mbconv_after_a_pruned_conv_runs_and_is_exact(tiny_space):
    arch = Arch(("conv3x3", "mbconv3_k3", "sep3x3", "skip"), (0.25, 1.0, 0.5, 1.0))
    model = perturbed_model(tiny_space, arch, seed=3)
    pruned = pruned_copy(model, arch)
    block = pruned.layers[1]
    width = tiny_space.slots[1].c_in
    n_kept = expected_count(width, 0.25)
    assert isinstance(block, MBConv) and block.residual
    assert block.project.conv.out_channels == n_kept  # follows its (pruned) input
    x = torch.randn(4, *tiny_space.input_shape)
    with torch.no_grad():
        assert pruned(x).shape == (4, tiny_space.num_classes)

        # at keep 1.0 the pruned block is the original block on the surviving channels
        kept = top_l1(model.layers[0].conv.weight, n_kept)
        y = pruned.layers[0](pruned.stem(x))
        full = torch.zeros(4, width, *y.shape[2:])
        full[:, kept] = y
        torch.testing.assert_close(block(y), model.layers[1](full)[:, kept])


# ----------------------------------------------------------------------- exactness on random architectures


def zeroing_reference(model: nn.Module, pruned: nn.Module) -> list:
    """Hooks that zero, in the original model, every channel that pruning removed (found by BN weights).

    A removed channel is one the pruned network does not compute; zeroing it where it is produced must give the
    same function, since every reader of that channel was sliced to skip it.
    """
    pruned_modules = dict(pruned.named_modules())
    handles = []
    for name, m in model.named_modules():
        if not isinstance(m, ConvBN) or name == "stem":
            continue
        old_w, new_w = m.bn.weight.tolist(), pruned_modules[name].bn.weight.tolist()
        kept = [old_w.index(w) for w in new_w]
        mask = torch.zeros(len(old_w))
        mask[kept] = 1.0

        def hook(_module, _inputs, output, mask=mask):
            return output * mask.view(1, -1, 1, 1)

        handles.append(m.register_forward_hook(hook))
    return handles


@pytest.mark.parametrize("seed", range(12))
def test_random_architectures_prune_exactly(tiny_space, seed):
    arch = tiny_space.sample(np.random.default_rng(seed))
    model = perturbed_model(tiny_space, arch, seed=seed)
    pruned = pruned_copy(model, arch)
    check_layout(pruned, tiny_space, arch)
    assert_plain_modules(pruned)
    x = torch.randn(6, *tiny_space.input_shape)
    handles = zeroing_reference(model, pruned)
    try:
        with torch.no_grad():
            torch.testing.assert_close(pruned(x), model(x), rtol=1e-4, atol=1e-5)
    finally:
        for h in handles:
            h.remove()


def test_pruned_child_trains(tiny_space):
    arch = Arch(("sep5x5", "mbconv6_k5", "avgpool3x3", "conv5x5"), (0.25, 0.5, 0.25, 0.5))
    pruned = pruned_copy(perturbed_model(tiny_space, arch), arch).train()
    opt = torch.optim.SGD(pruned.parameters(), lr=0.1)
    x, y = torch.randn(8, *tiny_space.input_shape), torch.randint(0, 10, (8,))
    loss = nn.functional.cross_entropy(pruned(x), y)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in pruned.parameters())
    opt.step()
