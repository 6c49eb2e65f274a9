"""The weight-sharing supernet: masked paths compute what pruned children compute, extraction inherits the right
weights, save/load checks the space, and the supernet evaluator plugs into the environment and the search."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from rlnas.cli import main
from rlnas.config import ConfigError, load_env_preset
from rlnas.envs.child_net import ChildNetEnv
from rlnas.envs.evaluators import cache_key, space_for
from rlnas.envs.supernet_evaluator import SUPERNET_FILE, SupernetEvaluator
from rlnas.latency import count_params
from rlnas.pruning import build_model, l1_importance, prune_child, top_channels
from rlnas.pruning.prune import kept_channels
from rlnas.search import resume_search, run_search
from rlnas.space import Arch
from rlnas.space.model import ChildNet
from rlnas.store import EvaluationStore
from rlnas.training.data import Split, load_data
from rlnas.training.supernet import (
    Supernet,
    SupernetMismatch,
    load_supernet,
    sample_paths,
    save_supernet,
    train_supernet,
)


@pytest.fixture(scope="module")
def supernet_preset(_digits_preset):
    return dataclasses.replace(
        _digits_preset,
        evaluator="supernet",
        supernet=dataclasses.replace(_digits_preset.supernet, steps=12, batch_size=32, resort_every=5),
    )


@pytest.fixture(scope="module")
def digits_data(supernet_preset):
    return load_data(supernet_preset.data)


@pytest.fixture(scope="module")
def trained(supernet_preset, digits_data):
    """A digits supernet trained for a few steps, and what training reported."""
    supernet = Supernet(space_for(supernet_preset))
    training = train_supernet(supernet, digits_data.train, supernet_preset.supernet, progress_bar=False)
    return supernet, training


def _archs(space, count: int, seed: int = 0) -> list[Arch]:
    rng = np.random.default_rng(seed)
    uniform = [space.uniform(op, keep) for op in space.operators for keep in space.keep_ratios]
    return uniform + [space.sample(rng) for _ in range(count)]


def test_extracted_children_have_the_parameters_of_children_built_and_pruned_directly(trained):
    supernet, _ = trained
    for arch in _archs(supernet.space, 10):
        child = supernet.extract(arch)
        direct = prune_child(build_model(supernet.space, arch), arch)
        assert isinstance(child, ChildNet) and child.arch == str(arch)
        assert count_params(child) == count_params(direct)
        assert {k: v.shape for k, v in child.state_dict().items()} == {
            k: v.shape for k, v in direct.state_dict().items()
        }


@pytest.mark.parametrize("keep", [0.25, 0.5])
def test_inherited_weights_are_the_supernets_top_importance_slices(trained, keep):
    supernet, _ = trained
    space = supernet.space
    arch = Arch(("conv3x3", "sep3x3", "mbconv3_k3", "conv3x3"), (keep,) * space.num_layers)
    child = supernet.extract(arch)

    def top(conv):
        return top_channels(l1_importance(conv), kept_channels(conv.out_channels, keep))

    conv0 = supernet.layers[0]["conv3x3"]
    out0 = top(conv0.conv)
    assert torch.equal(child.stem.conv.weight, supernet.stem.conv.weight)
    assert torch.equal(child.layers[0].conv.weight, conv0.conv.weight[out0])
    assert torch.equal(child.layers[0].bn.running_var, conv0.bn.running_var[out0])
    sep = supernet.layers[1]["sep3x3"]
    out1 = top(sep.pointwise.conv)
    assert torch.equal(child.layers[1].depthwise.conv.weight, sep.depthwise.conv.weight[out0])
    assert torch.equal(child.layers[1].pointwise.conv.weight, sep.pointwise.conv.weight[out1][:, out0])
    mb = supernet.layers[2]["mbconv3_k3"]
    hidden = top(mb.expand.conv)
    assert torch.equal(child.layers[2].expand.conv.weight, mb.expand.conv.weight[hidden][:, out1])
    assert torch.equal(child.layers[2].project.conv.weight, mb.project.conv.weight[:, hidden])
    last = supernet.layers[3]["conv3x3"]
    out3 = top(last.conv)
    assert torch.equal(child.classifier.weight, supernet.classifier.weight[:, out3])


def test_a_masked_path_computes_what_the_extracted_child_computes(tiny_space):
    """Every operator and keep-ratio, including projections, residuals and pass-through layers."""
    supernet = Supernet(tiny_space)
    data = Split(torch.randn(96, 1, 8, 8), torch.randint(0, 10, (96,)))
    cfg = load_env_preset("digits").supernet
    train_supernet(supernet, data, dataclasses.replace(cfg, steps=6, batch_size=32), progress_bar=False)
    supernet.eval()
    x = torch.randn(4, 1, 8, 8)
    for arch in _archs(tiny_space, 12, seed=1):
        with torch.no_grad():
            torch.testing.assert_close(supernet(x, arch), supernet.extract(arch).eval()(x), msg=str(arch))


def test_training_moves_the_weights_and_reports_a_finite_loss(supernet_preset, trained):
    supernet, training = trained
    fresh = Supernet(supernet.space)
    assert training.steps == supernet_preset.supernet.steps and np.isfinite(training.final_loss)
    assert not torch.equal(fresh.stem.conv.weight, supernet.stem.conv.weight)


def test_sandwich_sampling_trains_the_widest_the_narrowest_and_a_random_path(trained):
    space = trained[0].space
    paths = sample_paths(space, "sandwich", np.random.default_rng(0))
    assert len(paths) == 3
    assert set(paths[0].keeps) == {max(space.keep_ratios)} and set(paths[1].keeps) == {min(space.keep_ratios)}
    assert len(sample_paths(space, "uniform", np.random.default_rng(0))) == 1


@pytest.mark.parametrize("distill", [False, True])
def test_distillation_trains_the_other_paths_on_the_widest_paths_detached_soft_predictions(
    monkeypatch, supernet_preset, digits_data, distill
):
    calls = []
    cross_entropy = F.cross_entropy

    def spy(logits, target, *args, **kwargs):
        calls.append((logits.detach().clone(), target.detach().clone(), target.requires_grad))
        return cross_entropy(logits, target, *args, **kwargs)

    monkeypatch.setattr(F, "cross_entropy", spy)
    cfg = dataclasses.replace(supernet_preset.supernet, steps=3, distill=distill)
    train_supernet(Supernet(space_for(supernet_preset)), digits_data.train, cfg, progress_bar=False)
    assert len(calls) == 3 * cfg.steps, "three sandwich paths per step"
    for widest, *others in zip(*[iter(calls)] * 3, strict=True):
        assert not widest[1].is_floating_point(), "the widest path learns the true labels"
        for logits, target, target_requires_grad in others:
            assert logits.shape == widest[0].shape and not target_requires_grad
            if distill:
                torch.testing.assert_close(target, widest[0].softmax(dim=1))
            else:
                assert torch.equal(target, widest[1])


def test_widest_warmup_trains_full_width_paths_on_the_labels_then_the_sandwich(
    monkeypatch, supernet_preset, digits_data
):
    calls = []
    forward, cross_entropy = Supernet.forward, F.cross_entropy

    def spy_forward(self, x, arch):
        calls.append([arch])
        return forward(self, x, arch)

    def spy_loss(logits, target, *args, **kwargs):
        calls[-1].append(target.is_floating_point())
        return cross_entropy(logits, target, *args, **kwargs)

    monkeypatch.setattr(Supernet, "forward", spy_forward)
    monkeypatch.setattr(F, "cross_entropy", spy_loss)
    cfg = dataclasses.replace(supernet_preset.supernet, steps=4, distill=True, widest_warmup=0.5)
    space = space_for(supernet_preset)
    train_supernet(Supernet(space), digits_data.train, cfg, progress_bar=False)
    steps = [calls[i : i + 3] for i in range(0, len(calls), 3)]
    full = max(space.keep_ratios)
    assert len(steps) == cfg.steps
    for arch, soft_target in [call for step in steps[:2] for call in step]:
        assert set(arch.keeps) == {full} and not soft_target, "warm-up: full width, true labels"
    for step in steps[2:]:
        assert set(step[1][0].keeps) == {min(space.keep_ratios)}, "then the sandwich, narrowest path second"
        assert [soft for _, soft in step] == [False, True, True], "distilled from the widest path"


def test_sample_paths_widest_keeps_the_rules_path_count_at_full_width(tiny_space):
    for sampling, count in [("sandwich", 3), ("uniform", 1)]:
        paths = sample_paths(tiny_space, sampling, np.random.default_rng(0), widest=True)
        assert len(paths) == count and all(set(p.keeps) == {max(tiny_space.keep_ratios)} for p in paths)


def test_distillation_needs_the_sandwich_rule():
    with pytest.raises(ConfigError, match=r"supernet\.distill.*sandwich"):
        load_env_preset("digits", ["evaluator=supernet", "supernet.sampling=uniform", "supernet.distill=true"])
    assert load_env_preset("digits", ["evaluator=supernet", "supernet.distill=true"]).supernet.distill


def test_save_and_load_round_trip_and_refuse_another_space(tmp_path, supernet_preset, trained, tiny_space):
    supernet, training = trained
    path = save_supernet(supernet, tmp_path / "s.pt", supernet_preset.supernet, training)
    loaded, meta = load_supernet(path, supernet.space)
    assert meta["settings"]["steps"] == supernet_preset.supernet.steps and meta["training"]["seconds"] > 0
    arch = supernet.space.uniform("conv3x3", 0.5)
    assert torch.equal(loaded.extract(arch).layers[0].conv.weight, supernet.extract(arch).layers[0].conv.weight)
    with pytest.raises(SupernetMismatch) as err:
        load_supernet(path, tiny_space)
    assert supernet.space.fingerprint in str(err.value) and tiny_space.fingerprint in str(err.value)
    with pytest.raises(FileNotFoundError, match="rlnas supernet train"):
        load_supernet(tmp_path / "missing.pt", supernet.space)


def test_supernet_evaluator_returns_the_pruned_child_metrics_in_an_env_step(supernet_preset, trained, digits_data):
    supernet, _ = trained
    evaluator = SupernetEvaluator(supernet_preset, supernet, data=digits_data)
    env = ChildNetEnv(supernet_preset, evaluator=evaluator)
    arch = env.space.parse("conv3x3@0.5|sep3x3@1.0|mbconv3_k3@0.25|skip@1.0")
    _, reward, terminated, _, info = env.step(env.space.encode(arch))
    direct = prune_child(build_model(env.space, arch), arch)
    assert terminated and info["status"] == "ok" and 0 <= info["accuracy"] <= 1 and reward == info["reward"]
    assert info["params"] == count_params(direct) and info["train_s"] == 0.0 and info["latency_ms"] > 0
    # evaluating must not change the supernet (the child holds copies of its weights)
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    finetuning = dataclasses.replace(supernet_preset.supernet, finetune_steps=3)
    tuned = dataclasses.replace(supernet_preset, supernet=finetuning)
    SupernetEvaluator(tuned, supernet, data=digits_data).evaluate(arch)
    assert all(torch.equal(v, supernet.state_dict()[k]) for k, v in before.items())


def test_search_trains_a_supernet_into_the_run_then_reuses_a_given_one(tmp_path, supernet_preset):
    first = run_search(supernet_preset, "random", evaluations=2, runs_dir=tmp_path, run_name="a", progress_bar=False)
    saved = first.run_dir / SUPERNET_FILE
    assert saved.is_file() and first.evaluations == 2
    second = run_search(
        supernet_preset, "random", evaluations=2, runs_dir=tmp_path, run_name="b", progress_bar=False, supernet=saved
    )
    assert second.evaluations == 2 and not (second.run_dir / SUPERNET_FILE).exists()
    other = dataclasses.replace(supernet_preset, space=dataclasses.replace(supernet_preset.space, stem_width=4))
    with pytest.raises(SupernetMismatch, match="rlnas supernet train"):
        run_search(other, "random", evaluations=1, runs_dir=tmp_path, run_name="c", progress_bar=False, supernet=saved)


def test_cli_trains_and_saves_a_supernet_and_search_refuses_it_for_a_scratch_preset(tmp_path, capsys):
    out = tmp_path / "digits.pt"
    args = ["supernet", "train", "--env", "digits", "--set", "supernet.steps=3", "--out", str(out), "--no-progress"]
    assert main(args) == 0 and out.is_file()
    assert str(out) in capsys.readouterr().out
    search = ["search", "--env", "digits", "--strategy", "random", "--evaluations", "1", "--no-progress"]
    assert main([*search, "--runs-dir", str(tmp_path), "--supernet", str(out)]) == 2
    assert "evaluator=supernet" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("steps", 0, "positive"),
        ("sampling", "sometimes", "uniform"),
        ("val_size", 0, "null"),
        ("recalibration_batch_size", 0, "positive"),
        ("widest_warmup", 1, "fraction"),
        ("widest_warmup", -0.1, "fraction"),
    ],
)
def test_supernet_section_is_validated_naming_the_key(key, value, allowed):
    with pytest.raises(ConfigError, match=rf"supernet\.{key}.*{allowed}"):
        load_env_preset("digits", ["evaluator=supernet", f"supernet.{key}={value}"])


def test_parallel_envs_share_the_runs_supernet_and_a_resume_does_not_retrain_it(tmp_path, supernet_preset):
    result = run_search(supernet_preset, "ppo", evaluations=4, n_envs=2, runs_dir=tmp_path, run_name="p",
                        progress_bar=False)  # fmt: skip
    saved = result.run_dir / SUPERNET_FILE
    records = EvaluationStore(result.run_dir / "evaluations.sqlite").records()
    assert result.evaluations == len({r["arch"] for r in records}) == 4
    assert {r["key"] for r in records} == {
        cache_key(
            space_for(supernet_preset).fingerprint,
            r["arch"],
            SupernetEvaluator(supernet_preset, load_supernet(saved, space_for(supernet_preset))[0]).settings,
        )
        for r in records
    }, "every child was evaluated with the run's one supernet"
    stamp = saved.stat().st_mtime_ns
    (result.run_dir / "summary.json").unlink()  # as if killed before the end: resume runs the search's set-up
    assert resume_search(result.run_dir, progress_bar=False).evaluations == 4
    assert saved.stat().st_mtime_ns == stamp
