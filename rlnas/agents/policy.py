"""SB3's ``MlpPolicy`` with its multi-discrete action distribution computed as one tensor.

stable-baselines3's ``MultiCategoricalDistribution`` builds one ``torch.distributions.Categorical`` per action
dimension at every forward pass, and sums per-dimension ``log_prob``/``entropy`` calls. A child architecture is one
action with two dimensions per layer, and a PPO search runs thousands of small forward and backward passes, so on a
tabular benchmark that bookkeeping dominates a search's time. :class:`BatchedMultiCategorical` is the same
distribution (same logits layout, log-probabilities, entropy, mode) on a padded ``(batch, dimensions, choices)``
tensor, computed in a few tensor operations. :class:`BatchedMlpPolicy` is ``MlpPolicy`` with it; other action spaces
are left to SB3. Policies are saved and loaded with SB3's own ``save``/``load`` (the class is recorded by its import
path).

Redrawing repeats (``repeated_children: redraw`` in the agent preset): when the search sets
:attr:`BatchedMultiCategorical.exclude` to the children evaluated so far, a sampled child among them is drawn
again (up to :data:`MAX_REDRAWS` times), so a step evaluates a new child whenever the policy gives one a fair
chance. A policy that has converged on a good child then proposes its likeliest unseen neighbours, one and two
choices away, instead of repeating it: a local search around the policy's mode. The learner sees the child
actually proposed and its log-probability under the policy; a repeat that gets through anyway is penalised by
the reward shaping (:mod:`rlnas.agents.reward_shaping`). With :attr:`BatchedMultiCategorical.canonical` set
to the space's ``canonical_action``, a child that builds the same network as an evaluated one (equal up to
identity layers) is drawn again too. How this default was chosen: docs/defaults.md.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

import torch
from stable_baselines3.common.distributions import MultiCategoricalDistribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.type_aliases import Schedule
from torch import Tensor
from torch.distributions import Categorical

MAX_REDRAWS = 100
"""Draws per child at most under ``exclude``; a child still excluded after them is proposed anyway."""


class BatchedMultiCategorical(MultiCategoricalDistribution):
    """Independent categoricals over ``action_dims`` choices, as one padded tensor of log-probabilities."""

    def __init__(self, action_dims: list[int]) -> None:
        super().__init__([int(n) for n in action_dims])
        width = max(self.action_dims)
        starts = torch.tensor([0, *self.action_dims[:-1]]).cumsum(0)
        choice = torch.arange(width)
        self.valid = choice[None, :] < torch.tensor(self.action_dims)[:, None]
        self.index = torch.where(self.valid, starts[:, None] + choice[None, :], 0)  # flat logit of each (dim, choice)
        self.log_probs = torch.empty(0, len(self.action_dims), width)
        self.exclude: Collection[tuple[int, ...]] = ()  # actions to draw again (the search's evaluated children)
        self.canonical: Callable[[list[int]], tuple[int, ...]] = tuple  # the key of an action in ``exclude``

    @property
    def distribution(self) -> list[Categorical]:  # type: ignore[override]
        """One ``Categorical`` per action dimension, as SB3's distribution exposes them (built on demand)."""
        return [Categorical(logits=lp[:, :n]) for lp, n in zip(self.log_probs.unbind(1), self.action_dims, strict=True)]

    def proba_distribution(self, action_logits: Tensor) -> BatchedMultiCategorical:
        padding = torch.finfo(action_logits.dtype).min  # finite: -inf would turn 0 * log 0 into NaN gradients
        self.log_probs = action_logits[:, self.index].masked_fill(~self.valid, padding).log_softmax(-1)
        return self

    def log_prob(self, actions: Tensor) -> Tensor:
        return self.log_probs.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1).sum(1)

    def entropy(self) -> Tensor:
        return -(self.log_probs.exp() * self.log_probs).sum((1, 2))

    def sample(self) -> Tensor:
        batch, dims, width = self.log_probs.shape
        actions = torch.multinomial(self.log_probs.exp().reshape(-1, width), 1).reshape(batch, dims)
        for row, action in enumerate(actions.tolist()):
            if self.canonical(action) in self.exclude:  # draw MAX_REDRAWS more at once; keep the first not excluded
                redraws = torch.multinomial(self.log_probs[row].exp(), MAX_REDRAWS, replacement=True).T.tolist()
                fresh = next((a for a in redraws if self.canonical(a) not in self.exclude), None)
                if fresh is not None:
                    actions[row] = torch.tensor(fresh)
        return actions

    def mode(self) -> Tensor:
        return self.log_probs.argmax(-1)


class BatchedMlpPolicy(ActorCriticPolicy):
    """``MlpPolicy`` whose multi-discrete actions use :class:`BatchedMultiCategorical` (same parameters)."""

    def _build(self, lr_schedule: Schedule) -> None:
        if isinstance(self.action_dist, MultiCategoricalDistribution):
            self.action_dist = BatchedMultiCategorical(self.action_dist.action_dims)
        super()._build(lr_schedule)
