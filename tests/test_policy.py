"""The batched multi-discrete distribution is SB3's distribution, computed as one tensor."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.distributions import MultiCategoricalDistribution

from rlnas.agents.policy import BatchedMlpPolicy, BatchedMultiCategorical
from rlnas.agents.ppo import make_ppo
from rlnas.config import ConfigError, load_agent_preset
from rlnas.envs.child_net import ChildNetEnv

DIMS = [8, 4, 3, 1, 3]


def _both(seed: int) -> tuple[MultiCategoricalDistribution, BatchedMultiCategorical, torch.Tensor]:
    logits = torch.randn(6, sum(DIMS), generator=torch.Generator().manual_seed(seed)) * 3
    return (
        MultiCategoricalDistribution(DIMS).proba_distribution(logits),
        BatchedMultiCategorical(DIMS).proba_distribution(logits),
        logits,
    )


def test_log_prob_entropy_mode_and_gradients_match_sb3():
    sb3, batched, _ = _both(0)
    actions = sb3.sample()
    torch.testing.assert_close(batched.log_prob(actions), sb3.log_prob(actions))
    torch.testing.assert_close(batched.entropy(), sb3.entropy())
    assert torch.equal(batched.mode(), sb3.mode())
    for ours, theirs in zip(batched.distribution, sb3.distribution, strict=True):
        torch.testing.assert_close(ours.probs, theirs.probs)

    grads = []
    for dist_class in (MultiCategoricalDistribution, BatchedMultiCategorical):
        logits = _both(0)[2].requires_grad_()
        dist = dist_class(DIMS).proba_distribution(logits)
        (dist.log_prob(actions).sum() + dist.entropy().sum()).backward()
        grads.append(logits.grad)
    assert torch.isfinite(grads[1]).all()
    torch.testing.assert_close(grads[1], grads[0])


def test_samples_follow_the_probabilities():
    torch.manual_seed(0)
    _, batched, _ = _both(1)
    draws = torch.stack([batched.sample() for _ in range(4000)])  # (draws, batch, dims)
    for dim, (probs, n) in enumerate(zip(batched.distribution, DIMS, strict=True)):
        counts = torch.nn.functional.one_hot(draws[:, :, dim], n).float().mean(0)
        assert (draws[:, :, dim] < n).all()
        torch.testing.assert_close(counts, probs.probs, atol=0.04, rtol=0)


def test_ppo_uses_it_and_reloads_with_it(tmp_path, digits_preset, fake_evaluator):
    env = ChildNetEnv(digits_preset, evaluator=fake_evaluator)
    model = make_ppo(load_agent_preset("ppo"), env, seed=0)
    assert isinstance(model.policy, BatchedMlpPolicy)
    assert isinstance(model.policy.action_dist, BatchedMultiCategorical)
    model.learn(16)
    model.save(tmp_path / "policy.zip")
    loaded = PPO.load(tmp_path / "policy.zip", device="cpu")
    assert isinstance(loaded.policy.action_dist, BatchedMultiCategorical)
    obs = np.ones((3, 1), dtype=np.float32)
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])


def test_excluded_children_are_drawn_again_unless_nothing_else_is_likely():
    torch.manual_seed(0)
    dims = [3, 1, 3, 1]
    logits = torch.tensor([[4.0, 0.0, 0.0, 0.0, 4.0, 0.0, 0.0, 0.0]])  # mode (0, 0, 0, 0) with p ~ 0.93
    dist = BatchedMultiCategorical(dims).proba_distribution(logits)
    dist.exclude = {(0, 0, 0, 0), (0, 0, 1, 0)}
    draws = {tuple(dist.sample()[0].tolist()) for _ in range(200)}
    assert draws and not draws & dist.exclude
    assert (1, 0, 0, 0) in draws and (0, 0, 2, 0) in draws, "the mode's neighbours come next"

    dist = BatchedMultiCategorical(dims).proba_distribution(torch.tensor([[1.0, 0.0, 0.0, 0.0, 4.0, 0.0, 0.0, 0.0]]))
    dist.exclude = {(0, 0, 0, 0)}
    dist.canonical = lambda a: (a[0], a[1], 0, 0)  # as if layer 1 could never change the network
    draws = {tuple(dist.sample()[0].tolist()) for _ in range(200)}
    assert draws and all(a[0] != 0 for a in draws), "children that build an excluded network are drawn again"

    certain = BatchedMultiCategorical([2]).proba_distribution(torch.tensor([[0.0, -1e4]]))
    certain.exclude = {(0,)}
    assert certain.sample().tolist() == [[0]], "a child with no alternative is proposed anyway"


def test_a_redraw_search_evaluates_a_new_child_at_every_step(tmp_path, synthetic_table_preset):
    from rlnas.search import run_search
    from rlnas.store import EvaluationStore

    counts = {}
    for rule in ("neutral", "redraw"):
        agent = load_agent_preset("ppo", [f"repeated_children={rule}", "virtual_rollouts=0"])
        run_search(synthetic_table_preset, agent, evaluations=30, max_steps=200, runs_dir=tmp_path, run_name=rule,
                   seed=0, progress_bar=False)  # fmt: skip
        store = EvaluationStore(tmp_path / rule / "evaluations.sqlite")
        counts[rule] = (len(store), sum(s["cached"] for s in store.steps()))
        store.close()
    assert counts["redraw"] == (30, 0), "30 of the 45 distinct networks in 30 steps"
    assert counts["neutral"][1] > 0, "the neutral policy repeats children"


def test_redraw_needs_the_joint_factorisation():
    with pytest.raises(ConfigError, match="repeated_children"):
        load_agent_preset("ppo", ["repeated_children=redraw", "factorisation=sequential", "virtual_rollouts=0"])
