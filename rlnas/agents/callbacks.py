"""Log every evaluated child through SB3's logger (any strategy), and the SB3 callback that does it for PPO.

Besides the per-child scalars, every ``plot_every`` evaluations (and at the end) TensorBoard gets the
accuracy-latency scatter with the Pareto front and the budget (``search/pareto``), the top-5 architectures as a
table (``search/top5``: the most accurate within the budget, or the best rewards without one) and per-layer
histograms of the chosen operators and keep-ratios (``arch/layer_<i>/*``; a pruning run's ``layer_<i>`` is its
i-th group).
:func:`log_hparams` adds the run's settings with its final best reward (the HParams tab).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Figure, HParam, Logger, TensorBoardOutputFormat
from tqdm.auto import tqdm

from rlnas.agents.dyna import VirtualRollouts
from rlnas.budget import Budget, best_children
from rlnas.report import markdown_table, plot_pareto
from rlnas.space import Arch, KeepPlan

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
PLOT_EVERY = 16
_KEPT = ("arch", "status", "reward", "accuracy", "latency_ms", "flops", "params")


class ChildLogger:
    """Write each child's metrics (``child/*``) and the search's progress (``search/*``) to an SB3 logger.

    The step axis counts steps. A newly evaluated child logs its ``child/*`` metrics and dumps the logger; a
    child answered from the store (a cache hit) only counts in ``search/cache_hits``, written with the next
    dump (a converged search repeats children thousands of times, and a row each would be most of its cost).
    A tqdm bar shows the distinct children evaluated out of ``max_evaluations``. Every ``plot_every``
    evaluations and on :meth:`close`, the Pareto scatter, the top-5 table and the per-layer choice histograms
    (of the children since the last refresh; operators as indices into ``operators``, the space's operator
    list) are refreshed; ``parse`` reads an ``info["arch"]`` string (the space's ``parse``). ``resumed``: the
    state of a search that is being continued (counts, best record, the children evaluated so far). With a
    ``budget``, ``search/best_feasible_accuracy`` is the accuracy of the most accurate child within it and
    ``search/within_budget_share`` the share of children within it.
    """

    def __init__(
        self,
        logger: Logger,
        max_evaluations: int,
        progress_bar: bool = True,
        *,
        operators: Sequence[str] = (),
        parse: Callable[[str], Arch | KeepPlan] = Arch.parse,
        plot_every: int = PLOT_EVERY,
        resumed: dict | None = None,
        budget: Budget | None = None,
    ) -> None:
        if plot_every < 1:
            raise ValueError(f"plot_every must be at least 1, got {plot_every}")
        resumed = resumed or {}
        self.logger = logger
        self.operators = tuple(operators)
        self.parse = parse
        self.plot_every = plot_every
        self.budget = budget
        self.children: list[dict[str, Any]] = [{k: c[k] for k in _KEPT} for c in resumed.get("children", [])]
        self._window: list[Arch | KeepPlan] = []  # the architectures since the last refresh, for the histograms
        self.steps = resumed.get("steps", 0)
        self.evaluations = len(self.children)
        self.cache_hits = resumed.get("cache_hits", 0)
        self.diverged = sum(c["status"] != "ok" for c in self.children)
        best = max(self.children, key=lambda c: c["reward"], default=None)
        self.best_reward = best["reward"] if best else float("-inf")
        self.best_arch = best["arch"] if best else ""
        self.latency_source = ""
        self._undumped_hits = False
        self._bar = tqdm(
            total=max_evaluations, initial=self.evaluations, desc="search", unit="child", disable=not progress_bar
        )

    def log(self, info: dict) -> None:
        """Record one step (the ``info`` dict of an environment step that reached a child)."""
        self.steps += 1
        improved = info["reward"] > self.best_reward
        if info["cached"]:
            self.cache_hits += 1
        else:
            self._new_child(info)
        if improved:
            self.best_reward, self.best_arch = info["reward"], info["arch"]
            self.logger.record("search/best_arch", f"{self.best_arch} (reward {self.best_reward:.4f})")
        self._undumped_hits = info["cached"] and not improved
        if not self._undumped_hits:
            self._dump()
        if not info["cached"] and self.evaluations % self.plot_every == 0:
            self._write_views()
        self._bar.set_postfix(
            acc=f"{info['accuracy']:.3f}", lat_ms=f"{info['latency_ms']:.2f}", best=f"{self.best_reward:.4f}",
            hits=self.cache_hits,
        )  # fmt: skip

    def _dump(self) -> None:
        self.logger.record("search/best_reward", self.best_reward)
        self.logger.record("search/evaluations", self.evaluations)
        self.logger.record("search/cache_hits", self.cache_hits)
        self.logger.record("search/diverged", self.diverged)
        if self.budget is not None and self.children:
            within = self.budget.best(self.children)
            if within:
                self.logger.record("search/best_feasible_accuracy", within[0]["accuracy"])
            self.logger.record("search/within_budget_share", self.budget.share(self.children))
        self.logger.dump(self.steps)

    def _new_child(self, info: dict) -> None:
        self.evaluations += 1
        self._bar.update(1)
        if info["status"] == "ok":
            for tag, key in CHILD_SCALARS.items():
                self.logger.record(tag, info[key])
            if "multiplier" in info:  # reward.multiplier: adaptive
                self.logger.record("search/multiplier", info["multiplier"])
            if info.get("latency_source", "") != self.latency_source:
                self.latency_source = info["latency_source"]
                self.logger.record("search/latency_source", self.latency_source)
        else:
            self.diverged += 1
            self.logger.record("child/reward", info["reward"])
        self.children.append({k: info[k] for k in _KEPT})
        self._window.append(self.parse(info["arch"]))

    def close(self) -> None:
        """Write cache hits not yet dumped; refresh the plot, table and histograms if children came since the last
        refresh; close the progress bar."""
        if self._undumped_hits:
            self._dump()
        if self._window:
            self._write_views()
        self._bar.close()

    def _write_views(self) -> None:
        legend = ", ".join(f"{i}: {op}" for i, op in enumerate(self.operators))
        views: dict[str, Any] = {
            "search/top5": markdown_table(best_children(self.children, self.budget, 5))
            + (f"\n\nOperator indices in arch/layer_*/operator: {legend}" if legend else "")
        }
        if any(c["status"] == "ok" for c in self.children):
            figure = plot_pareto(self.children, title=f"{self.evaluations} evaluations", budget=self.budget)
            views["search/pareto"] = Figure(figure, close=True)
        for i in range(len(self._window[0].keeps) if self._window else 0):
            if self.operators:
                views[f"arch/layer_{i}/operator"] = np.array([self.operators.index(a.ops[i]) for a in self._window])
            views[f"arch/layer_{i}/keep_ratio"] = np.array([a.keeps[i] for a in self._window])
        write_tensorboard(self.logger, views, self.steps)
        self._window = []


class ChildLoggingCallback(BaseCallback):
    """Log every child a PPO search reaches (see :class:`ChildLogger`); stop once ``max_evaluations`` distinct
    children are evaluated, ``max_steps`` real steps were taken (virtual ones, :mod:`rlnas.agents.dyna`, do not
    count), or an environment reports its budget exhausted."""

    def __init__(
        self, max_evaluations: int, max_steps: int | None = None, progress_bar: bool = True, **logger_kwargs: Any
    ) -> None:
        super().__init__()
        self.max_evaluations, self.max_steps = max_evaluations, max_steps
        self.progress_bar = progress_bar
        self.logger_kwargs = logger_kwargs
        self.child_logger: ChildLogger | None = None
        self._exhausted = False

    @property
    def evaluations(self) -> int:
        """Distinct children evaluated so far."""
        return self.child_logger.evaluations if self.child_logger else 0

    def _on_training_start(self) -> None:
        self.child_logger = ChildLogger(self.logger, self.max_evaluations, self.progress_bar, **self.logger_kwargs)

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            if info.get("budget_exhausted"):
                self._exhausted = True
            elif "arch" in info:
                self.child_logger.log(info)
        steps_left = self.max_steps is None or self.child_logger.steps < self.max_steps
        return not self._exhausted and self.evaluations < self.max_evaluations and steps_left

    def _on_training_end(self) -> None:
        if self.child_logger is not None:
            self.child_logger.close()


def log_hparams(logger: Logger, settings: dict[str, dict[str, Any]], best_reward: float, step: int) -> None:
    """Record ``settings`` (sections of nested dicts, e.g. the resolved presets) as TensorBoard HParams.

    Names are ``section/dotted.key`` (``env/train.steps``). The metric is ``search/best_reward``, the scalar
    the run logs per child, whose last value is ``best_reward``.
    """
    hparams = {
        f"{section}/{key}": value
        for section, values in settings.items()
        for key, value in _flatten(values).items()
        if value is not None
    }
    write_tensorboard(logger, {"hparams": HParam(hparams, {"search/best_reward": best_reward})}, step)


def write_tensorboard(logger: Logger, values: dict[str, Any], step: int) -> None:
    """Write ``values`` (figures, text, histograms, hparams) to the logger's TensorBoard output only.

    Unlike ``logger.record`` + ``dump``, this adds no row to ``progress.csv``, which has no form for them.
    """
    for output in logger.output_formats:
        if isinstance(output, TensorBoardOutputFormat):
            output.write(values, dict.fromkeys(values, ()), step)


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"steps": 5}}`` -> ``{"train.steps": 5}``; lists become JSON strings."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat |= _flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = json.dumps(value) if isinstance(value, list) else value
    return flat


class EntropySchedule(BaseCallback):
    """Halve PPO's entropy coefficient every ``half_life`` evaluated children (set before each rollout)."""

    def __init__(self, start: float, half_life: float, children: int = 0) -> None:
        super().__init__()
        self.start, self.half_life = start, half_life
        self.children = children  # evaluated so far (a resumed search starts from its checkpoint's count)

    def _on_rollout_start(self) -> None:
        self.model.ent_coef = self.start * 0.5 ** (self.children / self.half_life)

    def _on_step(self) -> bool:
        self.children += sum("arch" in info and not info["cached"] for info in self.locals["infos"])
        return True


class VirtualRolloutLog(BaseCallback):
    """Log the reward model of virtual rollouts (:mod:`rlnas.agents.dyna`) after each rollout:
    ``virtual/model_r2`` (its leave-one-out R^2, once fitted) and ``virtual/next_rollout_virtual`` (0 or 1)."""

    def __init__(self, wrapper: VirtualRollouts) -> None:
        super().__init__()
        self.wrapper = wrapper

    def _on_rollout_end(self) -> None:
        if not np.isnan(self.wrapper.fit_r2):
            self.logger.record("virtual/model_r2", self.wrapper.fit_r2)
        self.logger.record("virtual/next_rollout_virtual", int(self.wrapper.virtual))

    def _on_step(self) -> bool:
        return True
