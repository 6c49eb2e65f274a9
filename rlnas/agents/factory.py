"""The search strategy an agent preset names: PPO or one of the baselines, behind one interface."""

from __future__ import annotations

from rlnas.agents.baseline_search import BaselineStrategy
from rlnas.agents.ppo_search import PPOStrategy
from rlnas.agents.strategy import SearchStrategy
from rlnas.config import AgentPreset, PPOPreset


def search_strategy(agent: AgentPreset) -> SearchStrategy:
    """The strategy ``agent`` describes."""
    return PPOStrategy(agent) if isinstance(agent, PPOPreset) else BaselineStrategy(agent)
