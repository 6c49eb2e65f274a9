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

    Every evaluated child is one point on the step axis (the logger is dumped after each child); a tqdm bar
    shows the progress towards ``max_evaluations``.
    """

    def __init__(self, logger: Logger, max_evaluations: int, progress_bar: bool = True) -> None:
        self.logger = logger
        self.evaluations = 0
        self.diverged = 0
        self.best_reward = float("-inf")
        self.best_arch = ""
        self._bar = tqdm(total=max_evaluations, desc="search", unit="child", disable=not progress_bar)

    def log(self, info: dict) -> None:
        """Record one evaluated child (the ``info`` dict of its environment step)."""
        self.evaluations += 1
        if info["status"] == "ok":
            for tag, key in CHILD_SCALARS.items():
                self.logger.record(tag, info[key])
        else:
            self.diverged += 1
            self.logger.record("child/reward", info["reward"])
        if info["reward"] > self.best_reward:
            self.best_reward, self.best_arch = info["reward"], info["arch"]
            self.logger.record("search/best_arch", f"{self.best_arch} (reward {self.best_reward:.4f})")
        self.logger.record("search/best_reward", self.best_reward)
        self.logger.record("search/evaluations", self.evaluations)
        self.logger.record("search/diverged", self.diverged)
        self.logger.dump(self.evaluations)
        self._bar.update(1)
        self._bar.set_postfix(
            acc=f"{info['accuracy']:.3f}", lat_ms=f"{info['latency_ms']:.2f}", best=f"{self.best_reward:.4f}"
        )

    def close(self) -> None:
        """Close the progress bar."""
        self._bar.close()


class ChildLoggingCallback(BaseCallback):
    """Log every child a PPO search evaluates (see :class:`ChildLogger`); stop at ``max_evaluations``."""

    def __init__(self, max_evaluations: int, progress_bar: bool = True) -> None:
        super().__init__()
        self.max_evaluations = max_evaluations
        self.progress_bar = progress_bar
        self.child_logger: ChildLogger | None = None

    @property
    def evaluations(self) -> int:
        """Children logged so far."""
        return self.child_logger.evaluations if self.child_logger else 0

    def _on_training_start(self) -> None:
        self.child_logger = ChildLogger(self.logger, self.max_evaluations, self.progress_bar)

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            if "arch" in info:
                self.child_logger.log(info)
        return self.evaluations < self.max_evaluations

    def _on_training_end(self) -> None:
        if self.child_logger is not None:
            self.child_logger.close()


class EntropySchedule(BaseCallback):
    """Halve PPO's entropy coefficient every ``half_life`` evaluated children (set before each rollout)."""

    def __init__(self, start: float, half_life: float) -> None:
        super().__init__()
        self.start, self.half_life = start, half_life
        self.children = 0

    def _on_rollout_start(self) -> None:
        self.model.ent_coef = self.start * 0.5 ** (self.children / self.half_life)

    def _on_step(self) -> bool:
        self.children += sum("arch" in info for info in self.locals["infos"])
        return True
