"""Baseline strategies in the same harness as PPO: random search, regularized evolution, uniform members.

Each is an ask/tell object over the environment's ``MultiDiscrete`` actions; :func:`run_strategy` drives it
through the same :class:`~rlnas.envs.child_net.ChildNetEnv` (so the reward, the store and the logging are
exactly those of a PPO search).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Protocol

import gymnasium as gym
import numpy as np

from rlnas.config import EvolutionPreset, RandomPreset, UniformPreset
from rlnas.space import Space


class Strategy(Protocol):
    """Proposes actions and learns from their rewards."""

    def ask(self) -> np.ndarray | None:
        """The next action to evaluate, or None when the strategy has nothing left to propose."""
        ...

    def tell(self, action: np.ndarray, reward: float) -> None:
        """The reward of an action returned by :meth:`ask`."""
        ...


class RandomSearch:
    """Every action uniformly at random."""

    def __init__(self, nvec: list[int], seed: int = 0) -> None:
        self.nvec = np.asarray(nvec)
        self.rng = np.random.default_rng(seed)

    def ask(self) -> np.ndarray:
        return self.rng.integers(0, self.nvec)

    def tell(self, action: np.ndarray, reward: float) -> None:
        pass


class RegularizedEvolution:
    """Aging evolution (Real et al., 2019, Algorithm 1).

    The first ``population_size`` actions are random. After that, ``sample_size`` members are drawn without
    replacement, the best one's action is copied with one dimension (that has a choice) changed to a
    different value, and once the population is full the oldest member is retired for each new child.
    """

    def __init__(self, nvec: list[int], population_size: int = 20, sample_size: int = 5, seed: int = 0) -> None:
        self.nvec = np.asarray(nvec)
        self.population_size, self.sample_size = population_size, sample_size
        self.rng = np.random.default_rng(seed)
        self.population: deque[tuple[np.ndarray, float]] = deque()
        self._mutable = np.flatnonzero(self.nvec > 1)

    def ask(self) -> np.ndarray:
        if len(self.population) < self.population_size:
            return self.rng.integers(0, self.nvec)
        picks = self.rng.choice(len(self.population), self.sample_size, replace=False)
        parent = max((self.population[i] for i in picks), key=lambda member: member[1])[0]
        return self.mutate(parent)

    def tell(self, action: np.ndarray, reward: float) -> None:
        self.population.append((np.asarray(action).copy(), float(reward)))
        if len(self.population) > self.population_size:
            self.population.popleft()

    def mutate(self, action: np.ndarray) -> np.ndarray:
        """A copy of ``action`` with one randomly chosen dimension set to a different value."""
        child = np.asarray(action).copy()
        if self._mutable.size == 0:
            return child
        dim = self.rng.choice(self._mutable)
        child[dim] = (child[dim] + self.rng.integers(1, self.nvec[dim])) % self.nvec[dim]
        return child


class UniformMembers:
    """Every architecture with one operator and one keep-ratio at all layers (every plan keeping one ratio in all
    groups), each once."""

    def __init__(self, space: Space) -> None:
        self._queue = deque(space.encode(member) for member in space.uniform_members())

    def ask(self) -> np.ndarray | None:
        return self._queue.popleft() if self._queue else None

    def tell(self, action: np.ndarray, reward: float) -> None:
        pass


def make_strategy(agent: EvolutionPreset | RandomPreset | UniformPreset, space: Space, seed: int) -> Strategy:
    """The baseline an agent preset describes, over ``space``'s actions."""
    if isinstance(agent, EvolutionPreset):
        return RegularizedEvolution(space.nvec, agent.population_size, agent.sample_size, seed)
    if isinstance(agent, UniformPreset):
        return UniformMembers(space)
    return RandomSearch(space.nvec, seed)


def run_strategy(
    env: gym.Env, strategy: Strategy, evaluations: int, max_steps: int, seed: int, on_child: Callable[[dict], None]
) -> int:
    """Step ``strategy``'s children until its steps reached ``evaluations`` distinct ones (children the env's
    store already holds are answered from it at no cost), ``max_steps`` steps were taken, or the strategy is done.

    Returns the number of steps taken.
    """
    env.reset(seed=seed)
    steps = reached = 0
    while steps < max_steps:
        action = strategy.ask()
        if action is None:
            break
        _, reward, _, _, info = env.step(action)
        if info.get("budget_exhausted"):
            break
        strategy.tell(action, reward)
        steps += 1
        on_child(info)
        reached += not info["cached"]
        if reached >= evaluations:
            break
        env.reset()
    return steps


def run_strategy_async(
    envs: list[gym.Env],
    strategy: Strategy,
    evaluations: int,
    max_steps: int,
    seed: int,
    on_child: Callable[[dict], None],
) -> int:
    """:func:`run_strategy` with one child in flight per environment: whenever one returns, the strategy is told
    its reward and asked for the next (asynchronous, as regularized evolution ran its workers).

    No more children are in flight than the budget has left, so random search reaches the children
    :func:`run_strategy` would (in another order). Returns the number of steps taken.
    """
    for i, env in enumerate(envs):
        env.reset(seed=seed + i)
    free, pending = list(reversed(envs)), {}
    steps = reached = 0
    done = False
    with ThreadPoolExecutor(max_workers=len(envs), thread_name_prefix="rlnas-baseline") as threads:
        while True:
            while free and not done and reached + len(pending) < evaluations and steps + len(pending) < max_steps:
                action = strategy.ask()
                if action is None:
                    done = True
                    break
                env = free.pop()
                pending[threads.submit(env.step, action)] = (env, action)
            if not pending:
                return steps
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in [f for f in pending if f in finished]:  # in the order they were asked for
                env, action = pending.pop(future)
                _, reward, _, _, info = future.result()
                env.reset()
                free.append(env)
                if info.get("budget_exhausted"):
                    done = True
                    continue
                strategy.tell(action, reward)
                steps += 1
                on_child(info)
                reached += not info["cached"]
