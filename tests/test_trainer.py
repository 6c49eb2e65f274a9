"""Child training: loss goes down, accuracy is a fraction, BN recalibration, and divergence is reported."""

from __future__ import annotations

import copy
import math
import signal

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from rlnas.config import DataConfig
from rlnas.envs.evaluators import space_for
from rlnas.pruning import build_model
from rlnas.training.data import Split, load_data
from rlnas.training.trainer import TrainingDiverged, accuracy, fit, recalibrate_bn


@pytest.fixture(scope="module")
def digits():
    return load_data(DataConfig(name="digits", val_size=300))


@pytest.fixture
def model(digits_preset):
    torch.manual_seed(0)
    space = space_for(digits_preset)
    return build_model(space, "conv3x3@1.0|sep3x3@1.0|conv3x3@1.0|skip@1.0")


def mean_loss(model: nn.Module, split: Split) -> float:
    model.eval()
    with torch.no_grad():
        return F.cross_entropy(model(split.x), split.y).item()


def test_fit_reduces_the_loss(model, digits):
    before = mean_loss(model, digits.train)
    assert before == pytest.approx(math.log(10), rel=0.5)  # an untrained 10-class model
    tail = fit(model, digits.train, steps=60, batch_size=64, lr=0.01, seed=0)
    after = mean_loss(model, digits.train)
    assert math.isfinite(tail)
    assert after < 0.5 * before
    assert tail < before
    assert accuracy(model, digits.val) > 0.5  # well above chance (0.1)


def test_fit_is_deterministic_for_a_seed(model, digits):
    twin = copy.deepcopy(model)
    loss_a = fit(model, digits.train, steps=5, batch_size=32, lr=0.01, seed=7)
    loss_b = fit(twin, digits.train, steps=5, batch_size=32, lr=0.01, seed=7)
    assert loss_a == loss_b
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.equal(a, b)


def test_fit_with_no_steps_changes_nothing(model, digits):
    before = copy.deepcopy(model.state_dict())
    assert math.isnan(fit(model, digits.train, steps=0, batch_size=32, lr=0.01))
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_fit_runs_more_steps_than_one_pass(digits, model):
    small = Split(digits.train.x[:40], digits.train.y[:40])
    loss = fit(model, small, steps=7, batch_size=16, lr=0.01, optimizer="sgd")  # 3 batches per pass
    assert math.isfinite(loss)


class ConstantClassifier(nn.Module):
    """Always predicts ``label``."""

    def __init__(self, label: int) -> None:
        super().__init__()
        self.label = label
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        logits = torch.zeros(len(x), 10)
        logits[:, self.label] = 1.0
        return logits


def test_accuracy_is_the_fraction_correct(model, digits):
    for label in (0, 3):
        expected = (digits.val.y == label).float().mean().item()
        assert accuracy(ConstantClassifier(label), digits.val, batch_size=64) == pytest.approx(expected)
    acc = accuracy(model, digits.val, batch_size=128)
    with torch.no_grad():
        manual = (model.eval()(digits.val.x).argmax(1) == digits.val.y).float().mean().item()
    assert 0.0 <= acc <= 1.0
    assert acc == pytest.approx(manual)


def test_recalibrate_bn_changes_running_stats_and_not_weights(model, digits):
    data = Split(digits.train.x[:256], digits.train.y[:256])
    weights = {k: v.clone() for k, v in model.named_parameters()}
    stats = {k: v.clone() for k, v in model.named_buffers() if "running" in k}
    momenta = [m.momentum for m in model.modules() if isinstance(m, nn.BatchNorm2d)]

    recalibrate_bn(model, data, batches=4, batch_size=64)  # exactly one pass over the 256 examples

    for k, v in model.named_parameters():
        assert torch.equal(v, weights[k]), k
    changed = [k for k, v in model.named_buffers() if "running" in k and not torch.equal(v, stats[k])]
    assert len(changed) == len(stats)
    assert [m.momentum for m in model.modules() if isinstance(m, nn.BatchNorm2d)] == momenta
    # a cumulative average over equal batches is the mean over the data: check the stem's BatchNorm
    with torch.no_grad():
        expected_mean = model.stem.conv(data.x).mean(dim=(0, 2, 3))
    torch.testing.assert_close(model.stem.bn.running_mean, expected_mean, rtol=1e-4, atol=1e-5)


def test_recalibrate_bn_with_no_batches_is_a_no_op(model, digits):
    stats = {k: v.clone() for k, v in model.named_buffers()}
    recalibrate_bn(model, digits.train, batches=0, batch_size=64)
    for k, v in model.named_buffers():
        assert torch.equal(v, stats[k]), k


@pytest.mark.parametrize("poison", [math.nan, math.inf])
def test_non_finite_inputs_raise_training_diverged_with_the_step(model, digits, poison):
    x = digits.train.x[:128].clone()
    x[:] = poison
    with pytest.raises(TrainingDiverged, match=r"at step 0 of 5"):
        fit(model, Split(x, digits.train.y[:128]), steps=5, batch_size=32, lr=0.01)


class BlowsUpAfter(nn.Module):
    """A linear classifier whose logits become NaN from its ``after``-th training forward pass on."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.linear = nn.Linear(64, 10)
        self.after, self.calls = after, 0

    def forward(self, x):
        logits = self.linear(x.flatten(1))
        self.calls += 1
        return logits * math.nan if self.calls > self.after else logits


def test_divergence_later_in_training_names_that_step(digits):
    with pytest.raises(TrainingDiverged) as info:
        fit(BlowsUpAfter(after=3), digits.train, steps=10, batch_size=32, lr=0.05)
    assert "at step 3 of 10" in str(info.value) and "lr=0.05" in str(info.value)


def _interrupt(_signum, _frame):
    raise TimeoutError("fit did not return within 2 s")


def test_fit_on_an_empty_split_raises_instead_of_hanging(model, digits):
    empty = Split(digits.train.x[:0], digits.train.y[:0])
    previous = signal.signal(signal.SIGALRM, _interrupt)
    signal.alarm(2)
    try:
        with pytest.raises((ValueError, RuntimeError)):
            fit(model, empty, steps=3, batch_size=32, lr=0.01)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
