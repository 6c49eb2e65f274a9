"""Torch-Pruning on models rlnas did not build: random plans on torchvision models and a user's model."""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn

from rlnas.latency import count_flops, count_params
from rlnas.pruning.foreign import Pruner, PruningError, build_named_model, load_pruned, prune_model

SMALL = ["tiny_models:tiny_net", "torchvision:mobilenet_v3_small"]
LARGE = ["resnet18", "resnet50", "mobilenet_v2", "efficientnet_b0", "vgg11_bn", "regnet_x_400mf", "densenet121"]
MODELS = SMALL + [pytest.param(f"torchvision:{n}", marks=pytest.mark.slow) for n in LARGE]


@pytest.mark.parametrize("name", MODELS)
def test_a_random_plan_prunes_any_model_and_replays(name):
    shape = (1, 8, 8) if name.startswith("tiny") else (3, 32, 32)
    torch.manual_seed(0)
    model = build_named_model(name, shape, 10).eval()
    x = torch.randn(2, *shape)
    with torch.no_grad():
        reference = model(x)
    same, full_plan = prune_model(model, shape, 1.0)
    with torch.no_grad():
        assert torch.equal(same.eval()(x), reference)  # keep 1.0 removes nothing
    rng = random.Random(0)
    keeps = [rng.choice([0.25, 0.5, 0.75]) for _ in full_plan["groups"]]
    pruned, plan = prune_model(model, shape, keeps)
    assert all(len(g["keep"]) < g["channels"] for g in plan["groups"])
    assert count_params(pruned) < count_params(model) and count_flops(pruned, shape) < count_flops(model, shape)
    rebuilt = load_pruned(build_named_model(name, shape, 10), plan)
    rebuilt.load_state_dict(pruned.state_dict())
    with torch.no_grad():
        out = pruned.eval()(x)
        assert out.shape == reference.shape
        assert torch.allclose(rebuilt.eval()(x), out)
        assert torch.equal(model(x), reference)  # the original is untouched


def test_the_engine_is_exported_at_the_top_level():
    import rlnas

    assert rlnas.load_pruned is load_pruned and rlnas.prune_model is prune_model


def test_l1_keeps_the_channels_with_the_largest_weights():
    model = nn.Sequential(nn.Conv2d(1, 4, 1, bias=False), nn.Flatten(), nn.Linear(4, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([1.0, 9.0, 2.0, 8.0]).view(4, 1, 1, 1))
        model[2].weight.fill_(1.0)
    _, plan = prune_model(model, (1, 1, 1), [0.5])
    assert plan["groups"] == [{"name": "0", "channels": 4, "keep": [1, 3]}]


def test_round_to_keeps_multiples_and_ignored_layers_stay_whole():
    model = build_named_model("torchvision:mobilenet_v3_small", (3, 32, 32), 10)
    pruned, plan = prune_model(model, (3, 32, 32), 0.3, round_to=8, ignored_layers=["features.1"])
    for group in plan["groups"]:
        assert len(group["keep"]) % 8 == 0 or len(group["keep"]) == group["channels"]
    assert all(not g["name"].startswith("features.1.") for g in plan["groups"])
    assert pruned.get_submodule("features.1").block[0][0].out_channels == 16


def test_a_model_torch_pruning_cannot_handle_names_the_layer():
    model = build_named_model("tiny_models:hard_coded_split", (1, 8, 8), 10)
    with pytest.raises(PruningError, match=r"forward fails after pruning in layer 'conv'.*model.ignored_layers"):
        prune_model(model, (1, 8, 8), 0.5)
    _, plan = prune_model(model, (1, 8, 8), 0.5, ignored_layers=["conv"])  # the fix the message names
    assert plan["groups"] == []


def test_bad_ignored_layers_and_foreign_plans_are_refused():
    model = build_named_model("tiny_models:tiny_net", (1, 8, 8), 10)
    with pytest.raises(PruningError, match="ignored layer 'nope' is not a module of the model"):
        Pruner(model, (1, 8, 8), ["nope"])
    _, plan = prune_model(model, (1, 8, 8), 0.5)
    other = build_named_model("torchvision:mobilenet_v3_small", (1, 8, 8), 10)
    with pytest.raises(PruningError, match="the plan's groups do not match this model's"):
        load_pruned(other, plan)
    with pytest.raises(PruningError, match="not a pruning plan"):
        load_pruned(other, {"groups": []})


def test_small_inputs_get_the_cifar_stem():
    resnet = build_named_model("torchvision:resnet18", (1, 28, 28), 10)
    assert resnet.conv1.kernel_size == (3, 3) and resnet.conv1.stride == (1, 1) and resnet.conv1.in_channels == 1
    assert isinstance(resnet.maxpool, nn.Identity) and resnet.fc.out_features == 10
    imagenet = build_named_model("torchvision:resnet18", (3, 28, 28), 10, small_input=False)
    assert imagenet.conv1.stride == (2, 2) and isinstance(imagenet.maxpool, nn.MaxPool2d)
