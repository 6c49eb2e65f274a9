"""Log every evaluated child through SB3's logger (any strategy), and the SB3 callback that does it for PPO."""

from __future__ import annotations

from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger
from tqdm.auto import tqdm

CHILD_SCALARS = {
    "child/accuracy": "accuracy",
    "child/latency_ms": "latency_ms",
    "child/flops": "flops",
    "child/params": "params",
    "child/reward": "reward",
    "child/train_seconds": "train_s",
    "reward/cost": "cost",
    "reward/target": "target",
    "reward/exponent": "exponent",
}


class ChildLogger:
    """Write each child's metrics (``child/*``) and the search's progress (``search/*``) to an SB3 logger.

    Every step is one point on the step axis (the logger is dumped after each step). A newly evaluated child
    logs its ``child/*`` metrics; a child answered from the store (a cache hit) only counts in
    ``search/cache_hits``. A tqdm bar shows the distinct children evaluated out of ``max_evaluations``.
    ``resumed``: the counts of a search that is being continued (steps, evaluations, diverged, best record).
    """

    def __init__(
        self, logger: Logger, max_evaluations: int, progress_bar: bool = True, resumed: dict | None = None
    ) -> None:
        resumed = resumed or {}
        self.logger = logger
        self.steps = resumed.get("steps", 0)
        self.evaluations = resumed.get("evaluations", 0)
        self.cache_hits = resumed.get("cache_hits", 0)
        self.diverged = resumed.get("diverged", 0)
        self.best_reward = resumed.get("best_reward", float("-inf"))
        self.best_arch = resumed.get("best_arch", "")
        self.latency_source = ""
        self._bar = tqdm(
            total=max_evaluations, initial=self.evaluations, desc="search", unit="child", disable=not progress_bar
        )

    def log(self, info: dict) -> None:
        """Record one step (the ``info`` dict of an environment step that reached a child)."""
        self.steps += 1
        if info["cached"]:
            self.cache_hits += 1
        elif info["status"] == "ok":
            for tag, key in CHILD_SCALARS.items():
                self.logger.record(tag, info[key])
            if info.get("latency_source", "") != self.latency_source:
                self.latency_source = info["latency_source"]
                self.logger.record("search/latency_source", self.latency_source)
        else:
            self.diverged += 1
            self.logger.record("child/reward", info["reward"])
        if info["reward"] > self.best_reward:
            self.best_reward, self.best_arch = info["reward"], info["arch"]
            self.logger.record("search/best_arch", f"{self.best_arch} (reward {self.best_reward:.4f})")
        self.logger.record("search/best_reward", self.best_reward)
        self.logger.record("search/evaluations", info["evaluations"])
        self.logger.record("search/cache_hits", self.cache_hits)
        self.logger.record("search/diverged", self.diverged)
        self.logger.dump(self.steps)
        self._bar.update(max(0, info["evaluations"] - self.evaluations))
        self.evaluations = max(self.evaluations, info["evaluations"])
        self._bar.set_postfix(
            acc=f"{info['accuracy']:.3f}", lat_ms=f"{info['latency_ms']:.2f}", best=f"{self.best_reward:.4f}",
            hits=self.cache_hits,
        )  # fmt: skip

    def close(self) -> None:
        """Close the progress bar."""
        self._bar.close()


class ChildLoggingCallback(BaseCallback):
    """Log every child a PPO search reaches (see :class:`ChildLogger`); stop once ``max_evaluations`` distinct
    children are evaluated (or an environment reports its budget exhausted)."""

    def __init__(self, max_evaluations: int, progress_bar: bool = True, resumed: dict | None = None) -> None:
        super().__init__()
        self.max_evaluations = max_evaluations
        self.progress_bar = progress_bar
        self.resumed = resumed
        self.child_logger: ChildLogger | None = None
        self._exhausted = False

    @property
    def evaluations(self) -> int:
        """Children logged so far."""
        return self.child_logger.evaluations if self.child_logger else 0

    def _on_training_start(self) -> None:
        self.child_logger = ChildLogger(self.logger, self.max_evaluations, self.progress_bar, self.resumed)

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            if info.get("budget_exhausted"):
                self._exhausted = True
            elif "arch" in info:
                self.child_logger.log(info)
        return not self._exhausted and self.evaluations < self.max_evaluations

    def _on_training_end(self) -> None:
        if self.child_logger is not None:
            self.child_logger.close()
