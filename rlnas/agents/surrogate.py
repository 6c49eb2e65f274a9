"""A reward model of the children evaluated so far, for the controller's virtual rollouts (:mod:`rlnas.agents.dyna`).

Kernel ridge regression on the architecture's choices: ridge regression on the one-hot encoding of every choice
(operator and keep-ratio per layer) and of every pair of choices, written as a kernel. Two architectures that
share ``m`` of their ``d`` choices have ``m`` one-hot features and ``m (m - 1) / 2`` pair features in common, so
the kernel is ``k(a, b) = m + m (m - 1) / 2``: the model is additive per choice plus every pairwise interaction
(an additive model alone misses the interactions between layers that decide the best child), and fitting costs
one ``n x n`` solve for ``n`` children, whatever the size of the space.

Whether the model is trusted is decided from data, as in DyNA-PPO (Angermueller et al., ICLR 2020): its
leave-one-out R^2 on the children evaluated so far (in closed form for ridge regression: no refits).
"""

from __future__ import annotations

import numpy as np

RIDGE = 1.0
"""Ridge penalty on the (one-hot and pairwise) feature weights."""


def shared_choice_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``k(a_i, b_j) = m + m (m - 1) / 2`` for ``m`` equal entries of action vectors ``a_i`` and ``b_j``."""
    m = (np.asarray(a)[:, None, :] == np.asarray(b)[None, :, :]).sum(axis=2).astype(float)
    return m + m * (m - 1) / 2


class RewardModel:
    """Predicts the reward of an action vector from the (action, reward) pairs it was fitted on."""

    def __init__(self, ridge: float = RIDGE) -> None:
        self.ridge = ridge
        self._actions: np.ndarray | None = None
        self._weights: np.ndarray | None = None
        self._inverse: np.ndarray | None = None
        self._mean = 0.0
        self._scale = 0.0

    def fit(self, actions: np.ndarray, rewards: np.ndarray) -> float:
        """Fit on ``actions`` (one row per child) and their ``rewards``; return the leave-one-out R^2."""
        actions, rewards = np.asarray(actions), np.asarray(rewards, float)
        self._mean = float(rewards.mean())
        centred = rewards - self._mean
        gram = shared_choice_kernel(actions, actions)
        inverse = np.linalg.inv(gram + self.ridge * np.eye(len(rewards)))
        self._actions, self._weights, self._inverse = actions, inverse @ centred, inverse
        self._scale = float(centred @ self._weights) / len(rewards)  # the Gaussian-process prior's variance scale
        # Leave-one-out residuals of ridge regression: (y - y_hat) / (1 - H_ii), with H = K (K + ridge I)^-1
        # = I - ridge (K + ridge I)^-1, so y - y_hat = ridge * weights and 1 - H_ii = ridge * inverse_ii.
        loo = self._weights / np.diag(inverse)
        spread = float(np.sum(centred**2))
        return 1.0 - float(np.sum(loo**2)) / spread if spread > 0 else float("-inf")

    def predict(self, actions: np.ndarray) -> np.ndarray:
        """Predicted rewards of ``actions`` (one row per child)."""
        return self.predict_with_std(actions)[0]

    def predict_with_std(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted rewards of ``actions`` and their standard deviations, reading the model as a Gaussian process
        (prior covariance ``scale * k``, noise variance ``scale * ridge``; ``scale`` fitted by maximum likelihood):
        0 far below the spread of the rewards for a child much like those seen, larger for unfamiliar ones."""
        if self._actions is None:
            raise RuntimeError("RewardModel.predict called before fit")
        actions = np.asarray(actions)
        cross = shared_choice_kernel(actions, self._actions)
        prior = shared_choice_kernel(actions[:1], actions[:1])[0, 0]  # k(a, a): the same for every action
        variance = prior - np.einsum("ij,jk,ik->i", cross, self._inverse, cross)
        return self._mean + cross @ self._weights, np.sqrt(np.maximum(variance, 0.0) * self._scale)
