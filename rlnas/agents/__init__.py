"""The controller: PPO from an agent preset, its callbacks, and the reusable controller artifact."""
