"""One interface for every search strategy: PPO and the baselines run a search the same way.

:mod:`rlnas.search` prepares a :class:`SearchContext` (the run's settings, space, store, logger and how to build
an environment) and hands it to the strategy the agent preset names; the strategy spends the budget and returns
its reusable controller, if it has one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
from stable_baselines3.common.logger import Logger

from rlnas.agents.controller import Controller
from rlnas.config import EnvPreset
from rlnas.run_settings import RunSettings
from rlnas.space import Space
from rlnas.store import EvaluationStore


@dataclass(frozen=True)
class SearchContext:
    """Everything a strategy needs to search: ``make_env(sequential=False)`` builds one environment of the run;
    ``views`` are the :class:`~rlnas.agents.callbacks.ChildLogger` options (budget, plots, progress bar); with
    ``resume``, the strategy continues the run in ``run_dir`` instead of starting it."""

    make_env: Callable[..., gym.Env]
    env_preset: EnvPreset
    settings: RunSettings
    space: Space
    store: EvaluationStore
    logger: Logger
    views: dict[str, Any]
    run_dir: Path
    resume: bool


class SearchStrategy(Protocol):
    """Spends a run's budget; returns the trained controller, or None for strategies without one."""

    parallel: bool
    """Whether the strategy can evaluate several children at once (``--n-envs`` > 1)."""

    def search(self, context: SearchContext) -> Controller | None:
        """Search until the run's budget is spent (or the strategy has nothing left to propose)."""
        ...
