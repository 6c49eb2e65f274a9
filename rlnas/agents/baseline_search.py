"""The baselines as a search strategy: an ask/tell baseline, every child logged as PPO's are; one environment, or
with ``--backend ray`` one per child in flight (asynchronous: a worker that frees up gets the next child)."""

from __future__ import annotations

from rlnas.agents.baselines import make_strategy, run_strategy, run_strategy_async
from rlnas.agents.callbacks import ChildLogger
from rlnas.agents.strategy import SearchContext
from rlnas.config import EvolutionPreset, RandomPreset, UniformPreset


class BaselineStrategy:
    """Random search, regularized evolution or uniform members, from their agent preset; no controller."""

    parallel = False

    def __init__(self, agent: EvolutionPreset | RandomPreset | UniformPreset) -> None:
        self.agent = agent

    def search(self, context: SearchContext) -> None:
        """Run the baseline until the budget is spent.

        Baselines are deterministic given their seed and rewards: a resumed one replays from its start, every
        child it already evaluated being answered from the store (and counted again as its steps reach it).
        """
        settings = context.settings
        context.store.truncate_steps(0)
        child_logger = ChildLogger(context.logger, settings.evaluations, **context.views)
        envs = [context.make_env() for _ in range(settings.n_envs)]
        budget = (settings.evaluations, settings.max_steps, settings.seed, child_logger.log)
        try:
            strategy = make_strategy(self.agent, context.space, settings.seed)
            if settings.backend == "ray":
                run_strategy_async(envs, strategy, *budget)
            else:
                run_strategy(envs[0], strategy, *budget)
        finally:
            child_logger.close()
            for env in envs:
                env.close()
