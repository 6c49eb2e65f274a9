"""SB3 callbacks: log every evaluated child through SB3's logger and stop at the evaluation budget."""

from __future__ import annotations

from stable_baselines3.common.callbacks import BaseCallback
from tqdm.auto import tqdm

CHILD_SCALARS = {
    "child/accuracy": "accuracy",
    "child/latency_ms": "latency_ms",
    "child/flops": "flops",
    "child/params": "params",
    "child/reward": "reward",
    "child/train_seconds": "train_s",
}


class ChildLoggingCallback(BaseCallback):
    """Write each child's metrics (``child/*``) and the search's progress (``search/*``) to TensorBoard.

    Every evaluated child is one point on SB3's step axis (the logger is dumped after each child).
    Training stops once ``max_evaluations`` children have been evaluated.
    """

    def __init__(self, max_evaluations: int, progress_bar: bool = True) -> None:
        super().__init__()
        self.max_evaluations = max_evaluations
        self.progress_bar = progress_bar
        self.evaluations = 0
        self.diverged = 0
        self.best_reward = float("-inf")
        self.best_arch = ""
        self._bar: tqdm | None = None

    def _on_training_start(self) -> None:
        self._bar = tqdm(total=self.max_evaluations, desc="search", unit="child", disable=not self.progress_bar)

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            if "arch" in info:
                self._log_child(info)
        return self.evaluations < self.max_evaluations

    def _log_child(self, info: dict) -> None:
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
        self.logger.dump(self.num_timesteps)
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix(
                acc=f"{info['accuracy']:.3f}", lat_ms=f"{info['latency_ms']:.2f}", best=f"{self.best_reward:.4f}"
            )

    def _on_training_end(self) -> None:
        if self._bar is not None:
            self._bar.close()
