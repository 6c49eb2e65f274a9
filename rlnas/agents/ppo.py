"""Build a stable-baselines3 PPO controller from an agent preset (configured, never subclassed; its policy is
SB3's ``MlpPolicy`` with a faster multi-discrete distribution, :mod:`rlnas.agents.policy`)."""

from __future__ import annotations

from gymnasium import Env
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecEnv

from rlnas.agents.policy import BatchedMlpPolicy
from rlnas.config import PPOPreset


def make_ppo(agent: PPOPreset, env: Env | VecEnv, seed: int | None = None, steps_per_child: int = 1) -> PPO:
    """A fresh PPO policy for ``env`` with the preset's hyperparameters (the controller runs on CPU).

    The preset's ``n_steps`` and ``batch_size`` count children; ``steps_per_child`` (the decisions per child of a
    sequential factorisation) turns them into environment steps.
    """
    return PPO(
        BatchedMlpPolicy,
        env,
        n_steps=agent.n_steps * steps_per_child,
        batch_size=agent.batch_size * steps_per_child,
        n_epochs=agent.n_epochs,
        learning_rate=agent.learning_rate,
        gamma=agent.gamma,
        gae_lambda=agent.gae_lambda,
        clip_range=agent.clip_range,
        ent_coef=agent.ent_coef,
        vf_coef=agent.vf_coef,
        max_grad_norm=agent.max_grad_norm,
        policy_kwargs={"net_arch": list(agent.net_arch)},
        seed=agent.seed if seed is None else seed,
        device="cpu",
        verbose=0,
    )
