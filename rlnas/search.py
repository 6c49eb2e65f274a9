"""Run a search: environment + strategy (PPO or a baseline) + logging, everything under ``runs/NAME/``.

``runs/NAME/`` holds ``config.yaml`` (resolved presets and settings), ``command.txt``, TensorBoard events and
``progress.csv`` (SB3's logger), ``evaluations.sqlite`` (every child, committed before its reward is used),
``policy/`` (the reusable controller, PPO only) and ``summary.json`` / ``summary.md`` (the best children).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from stable_baselines3 import PPO
from stable_baselines3.common.logger import Logger, configure
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

import rlnas
from rlnas.agents.baselines import make_strategy, run_strategy
from rlnas.agents.callbacks import ChildLogger, ChildLoggingCallback
from rlnas.agents.controller import Controller
from rlnas.agents.ppo import make_ppo
from rlnas.agents.reward_shaping import RewardShaping
from rlnas.config import AgentPreset, EnvPreset, PPOPreset, load_agent_preset, load_env_preset, to_dict
from rlnas.envs.child_net import ChildNetEnv
from rlnas.envs.evaluators import Evaluator
from rlnas.envs.supernet_evaluator import supernet_evaluator_for_run
from rlnas.store import EvaluationStore

STORE_FILE = "evaluations.sqlite"


@dataclass(frozen=True)
class SearchResult:
    """Where the run is, how many children it evaluated, the best of them and (for PPO) the controller."""

    run_dir: Path
    evaluations: int
    best: list[dict]
    controller: Controller | None


def default_run_name(env: EnvPreset, agent: AgentPreset, seed: int) -> str:
    """``{preset}__{strategy}__{seed}__{unix_time}``, as CleanRL names runs."""
    return f"{env.name}__{agent.algo}__{seed}__{int(time.time())}"


def run_search(
    env: EnvPreset | str | Path = "fashion_mnist",
    agent: AgentPreset | str | Path = "ppo",
    *,
    evaluations: int = 16,
    run_name: str | None = None,
    runs_dir: str | Path = "runs",
    device: str = "cpu",
    seed: int | None = None,
    target_latency_ms: float | None = None,
    progress_bar: bool = True,
    evaluator: Evaluator | None = None,
    command: str | None = None,
    supernet: str | Path | None = None,
) -> SearchResult:
    """Search ``evaluations`` children with the agent preset's strategy (PPO, evolution, random or uniform).

    Writes the run folder and returns its best children; a PPO search also saves its reusable controller.
    With ``evaluator: supernet`` the search uses the supernet saved at ``supernet`` (same search space), or
    first trains one into ``runs/NAME/supernet.pt``.
    """
    env_preset = env if isinstance(env, EnvPreset) else load_env_preset(env)
    agent_preset = agent if isinstance(agent, AgentPreset) else load_agent_preset(agent)
    if evaluations < 1:
        raise ValueError(f"evaluations must be at least 1, got {evaluations}")
    seed = agent_preset.seed if seed is None else seed
    run_dir = Path(runs_dir) / (run_name or default_run_name(env_preset, agent_preset, seed))
    if run_dir.exists() and any(run_dir.iterdir()):
        raise FileExistsError(f"{run_dir} already exists and is not empty: choose another --run-name or remove it")
    run_dir.mkdir(parents=True, exist_ok=True)
    if evaluator is None and (supernet is not None or env_preset.evaluator == "supernet"):
        evaluator = supernet_evaluator_for_run(env_preset, supernet, run_dir, device=device, progress_bar=progress_bar)

    child_env = ChildNetEnv(
        env_preset, device=device, store_path=run_dir / STORE_FILE,
        target_latency_ms=target_latency_ms, evaluator=evaluator,
    )  # fmt: skip
    settings = {
        "strategy": agent_preset.algo, "evaluations": evaluations, "seed": seed, "device": device,
        "rlnas_version": rlnas.__version__, "target_latency_ms": child_env.target_ms,
        "space_fingerprint": child_env.space.fingerprint,
    }  # fmt: skip
    resolved = {"env": to_dict(env_preset), "agent": to_dict(agent_preset), "search": settings}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
    if command:
        (run_dir / "command.txt").write_text(command + "\n")
    logger = configure(str(run_dir), ["tensorboard", "csv"])

    started = time.time()
    controller = None
    if isinstance(agent_preset, PPOPreset):
        model = _search_with_ppo(child_env, agent_preset, evaluations, seed, logger, progress_bar)
        controller = Controller(model, child_env.space, child_env.reference_ms)
    else:
        strategy = make_strategy(agent_preset, child_env.space, seed)
        child_logger = ChildLogger(logger, evaluations, progress_bar)
        run_strategy(child_env, strategy, evaluations, seed, child_logger.log)
        child_logger.close()
        child_env.close()
    logger.close()
    elapsed = time.time() - started

    store = EvaluationStore(run_dir / STORE_FILE)
    best = store.best(5)
    if controller is not None:
        trained = {"evaluations": len(store), "best_arch": best[0]["arch"], "best_reward": best[0]["reward"]}
        controller.save(run_dir / "policy", env_preset, {"trained": trained})
    _write_summary(run_dir, store.records(), best, settings, elapsed)
    count = len(store)
    store.close()
    return SearchResult(run_dir, count, best, controller)


def _search_with_ppo(
    env: ChildNetEnv, agent: PPOPreset, evaluations: int, seed: int, logger: Logger, progress_bar: bool
) -> PPO:
    vec_env = RewardShaping(DummyVecEnv([lambda: Monitor(env)]), agent.reward_transform, agent.repeated_children)
    model = make_ppo(agent, vec_env, seed)
    model.set_logger(logger)
    model.learn(total_timesteps=evaluations, callback=ChildLoggingCallback(evaluations, progress_bar))
    vec_env.close()
    return model


def _write_summary(run_dir: Path, records: list[dict], best: list[dict], settings: dict, elapsed: float) -> None:
    summary = {
        **settings,
        "evaluated": len(records),
        "diverged": sum(r["status"] != "ok" for r in records),
        "seconds": round(elapsed, 1),
        "best": [{k: r[k] for k in ("arch", "reward", "accuracy", "latency_ms", "flops", "params")} for r in best],
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    lines = [
        f"# Search summary: {run_dir.name}",
        "",
        f"{len(records)} children evaluated by {settings['strategy']} in {elapsed:.0f} s"
        + (f"; latency target {settings['target_latency_ms']} ms." if settings["target_latency_ms"] else "."),
        "",
        "| rank | reward | val. accuracy | latency (ms) | MFLOPs | params | architecture |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    lines += [
        f"| {i} | {r['reward']:.4f} | {r['accuracy']:.4f} | {r['latency_ms'] or 'n/a':.4} | {r['flops'] / 1e6:.2f} "
        f"| {r['params']} | `{r['arch']}` |"
        for i, r in enumerate(best, 1)
    ]
    (run_dir / "summary.md").write_text("\n".join(lines) + "\n")
