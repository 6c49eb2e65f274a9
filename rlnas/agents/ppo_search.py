"""The PPO strategy: vectorised environments, the learner's wrappers, checkpoints and resume."""

from __future__ import annotations

import functools
from pathlib import Path

from stable_baselines3 import PPO
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

from rlnas.agents.callbacks import ChildLoggingCallback, EntropySchedule, VirtualRolloutLog
from rlnas.agents.checkpoints import CheckpointCallback, PolicyWriter, checkpoints, load_checkpoint
from rlnas.agents.controller import Controller, load_controller
from rlnas.agents.dyna import VirtualRollouts
from rlnas.agents.ppo import make_ppo
from rlnas.agents.reward_shaping import RewardShaping
from rlnas.agents.sequential import SequentialLayout
from rlnas.agents.strategy import SearchContext
from rlnas.agents.tempering import StallTempering
from rlnas.cluster.vec_env import ThreadVecEnv
from rlnas.config import ConfigError, PPOPreset
from rlnas.run_settings import RunSettings
from rlnas.space import Space
from rlnas.store import EvaluationStore

CHECKPOINT_DIR = "checkpoints"


class PPOStrategy:
    """Search with the agent preset's PPO and return the trained, reusable controller."""

    parallel = True

    def __init__(self, agent: PPOPreset) -> None:
        self.agent = agent

    def search(self, context: SearchContext) -> Controller:
        """Train the controller on the run's children (continuing from the last checkpoint when resuming)."""
        describe = functools.partial(
            Controller, space=context.space, reference_ms=context.env_preset.reward.latency_target,
            factorisation=self.agent.factorisation,
        )  # fmt: skip

        def write_policy(policy: BasePolicy, folder: Path) -> None:
            describe(policy).save(folder, context.env_preset)

        model = search_with_ppo(
            context.make_env, self.agent, context.settings, context.space, context.run_dir / CHECKPOINT_DIR,
            context.store, context.logger, context.views, context.resume, write_policy,
        )  # fmt: skip
        return describe(model.policy, model=model)


def _resumed(store: EvaluationStore) -> dict:
    """What the child logger of a resumed search starts from: the steps kept, their cache hits, the children they
    reached (children stored after the checkpoint are reached again by the steps the search takes again)."""
    steps = store.steps()
    reached = {s["evaluation"] for s in steps}
    children = [r for r in store.records() if r["id"] in reached]
    return {"steps": len(steps), "cache_hits": sum(s["cached"] for s in steps), "children": children}


def search_with_ppo(
    make_env: functools.partial,
    agent: PPOPreset,
    settings: RunSettings,
    space: Space,
    checkpoint_dir: Path,
    store: EvaluationStore,
    logger: Logger,
    views: dict,
    resume: bool,
    write_policy: PolicyWriter,
) -> PPO:
    """Search with PPO until the budget is spent; return the trained model.

    ``make_env`` builds one environment (``sequential=True`` for that factorisation); with ``resume``, the model,
    its optimiser, random-number states and wrapper statistics come from the last checkpoint in
    ``checkpoint_dir`` and the steps after it are taken again, answered from the store.
    """
    n_envs = settings.n_envs
    sequential = agent.factorisation == "sequential"
    steps_per_child = SequentialLayout(space.nvec).steps if sequential else 1  # environment steps per child
    factories = [functools.partial(make_env, sequential=sequential)] * n_envs
    if settings.backend == "ray":  # the environments wait on the cluster's workers: threads suffice
        base = ThreadVecEnv(factories)
    else:
        base = SubprocVecEnv(factories) if n_envs > 1 else DummyVecEnv(factories)
    learner_state = {}  # wrappers whose statistics a checkpoint keeps
    if agent.virtual_rollouts:
        base = learner_state["virtual"] = VirtualRollouts(
            base,
            agent.n_steps,
            agent.virtual_rollouts,
            agent.surrogate_min_r2,
            agent.surrogate_min_children,
            agent.surrogate_exploration,
            space.canonical_action,
        )
    vec_env = learner_state["shaping"] = RewardShaping(
        base, agent.reward_transform, agent.repeated_children, agent.rank_window
    )
    latest = checkpoints(checkpoint_dir)[-1:] if resume else []
    model = make_ppo(agent, vec_env, settings.seed, steps_per_child)
    if latest:
        state = load_checkpoint(latest[0], model, learner_state)
        store.truncate_steps(state["store"]["steps"])
    else:
        store.truncate_steps(0)
        if settings.init_policy:
            _init_from(model, settings.init_policy, space, agent)
    if agent.repeated_children == "redraw":
        model.policy.action_dist.exclude = vec_env.seen  # the shaping's set of evaluated children, kept up to date
        model.policy.action_dist.canonical = space.canonical_action  # as the environment reports their actions
    model.set_logger(logger)
    resumed = _resumed(store)
    callbacks = [
        ChildLoggingCallback(settings.evaluations, settings.max_steps, resumed=resumed, **views),
        CheckpointCallback(checkpoint_dir, agent.n_steps * n_envs, learner_state, store, write_policy),
    ]
    if agent.stall_children is not None:
        callbacks.append(StallTempering(agent.stall_children, agent.stall_temper))
    if "virtual" in learner_state:
        callbacks.append(VirtualRolloutLog(learner_state["virtual"]))
    if agent.ent_half_life is not None:
        evaluated = sum(not s["cached"] for s in store.steps())  # by the checkpoint's time, when resuming
        callbacks.append(EntropySchedule(agent.ent_coef, agent.ent_half_life, evaluated))
    # Virtual steps count as SB3 timesteps but not towards max_steps (the callback counts real steps).
    remaining = settings.max_steps * steps_per_child * (1 + agent.virtual_rollouts) - model.num_timesteps
    if remaining > 0 and len(resumed["children"]) < settings.evaluations:
        model.learn(total_timesteps=remaining, callback=callbacks, reset_num_timesteps=not latest)
    vec_env.close()
    return model


def _init_from(model: PPO, policy_path: str | Path, space: Space, agent: PPOPreset) -> None:
    """Start ``model`` from a trained controller's policy weights (same space, factorisation and policy shape)."""
    trained = load_controller(policy_path, space=space)
    if trained.factorisation != agent.factorisation:
        raise ConfigError(
            f"--init-policy {policy_path} is a {trained.factorisation} controller; this agent preset is "
            f"{agent.factorisation}: use the agent preset it was trained with"
        )
    try:
        model.policy.load_state_dict(trained.policy.state_dict())
    except RuntimeError as err:
        raise ConfigError(
            f"--init-policy {policy_path}: its policy network does not fit this agent preset ({err}); use the agent "
            "preset it was trained with (net_arch)"
        ) from err
