"""The baselines as a search strategy: one environment, an ask/tell baseline, every child logged as PPO's are."""

from __future__ import annotations

from rlnas.agents.baselines import make_strategy, run_strategy
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
        env = context.make_env()
        try:
            strategy = make_strategy(self.agent, context.space, settings.seed)
            run_strategy(env, strategy, settings.evaluations, settings.max_steps, settings.seed, child_logger.log)
        finally:
            child_logger.close()
            env.close()
