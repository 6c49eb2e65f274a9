"""Run a search: environment + strategy (PPO or a baseline) + logging, everything under ``runs/NAME/``.

``runs/NAME/`` holds ``config.yaml`` (resolved presets and settings), ``command.txt``, TensorBoard events and
``progress.csv`` (SB3's logger), ``evaluations.sqlite`` (every child, committed before its reward is used; also
the run's evaluation cache), ``checkpoints/`` (PPO, for ``--resume``), ``policy/`` (the reusable controller, PPO
only), ``summary.json`` / ``summary.md`` (the most accurate children within the run's budget) and ``run.lock``
(held by the one process that runs or resumes the search, :mod:`rlnas.run_lock`). What is safe to take from
others: docs/trust.md.

The budget is ``evaluations`` distinct children: a child the store already holds is answered from it at no cost
(a cache hit) and does not count. ``max_steps`` (default ten times the budget) bounds the steps, hits included,
for a policy that keeps proposing children it has seen. ``resume_search`` can raise both (docs/inputs.md).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml
from stable_baselines3.common.logger import CSVOutputFormat, Logger, TensorBoardOutputFormat
from stable_baselines3.common.monitor import Monitor

import rlnas
from rlnas.agents.callbacks import PLOT_EVERY, log_hparams
from rlnas.agents.checkpoints import check_store
from rlnas.agents.controller import Controller, load_controller
from rlnas.agents.factory import search_strategy
from rlnas.agents.ppo_search import CHECKPOINT_DIR
from rlnas.agents.sequential import SequentialDesign
from rlnas.agents.strategy import SearchContext
from rlnas.budget import Budget, best_children, budget_of_run, run_budget
from rlnas.cheapest import check_reachable
from rlnas.cluster.backend import check_backend, ray_evaluator
from rlnas.config import (
    AgentPreset,
    ConfigError,
    EnvPreset,
    load_agent_preset,
    load_env_preset,
    read_yaml,
    to_dict,
)
from rlnas.envs.child_net import checked_target
from rlnas.envs.evaluator_factory import make_evaluator
from rlnas.envs.evaluators import Evaluator, checked_device, space_for
from rlnas.envs.make import make_env as preset_env
from rlnas.envs.supernet_evaluator import supernet_for_run
from rlnas.run_folder import (
    CONFIG_FILE,
    DEFAULT_STEPS_PER_EVALUATION,
    STORE_FILE,
    checked_run_name,
    extended_budget,
    remove_if_unused,
    resumable,
    write_config,
)
from rlnas.run_lock import run_lock
from rlnas.run_settings import RunSettings
from rlnas.space import Space
from rlnas.store import EvaluationStore
from rlnas.summary import write_summary


@dataclass(frozen=True)
class SearchResult:
    """Where the run is, how many children it evaluated, the best of them (the most accurate within its budget)
    and (for PPO) the controller."""

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
    max_steps: int | None = None,
    n_envs: int | None = None,
    run_name: str | None = None,
    runs_dir: str | Path = "runs",
    device: str = "cpu",
    seed: int | None = None,
    target_latency_ms: float | None = None,
    init_policy: str | Path | None = None,
    progress_bar: bool = True,
    evaluator: Evaluator | None = None,
    command: str | None = None,
    plot_every: int = PLOT_EVERY,
    supernet: str | Path | None = None,
    backend: str = "local",
    workers: int = 1,
    gpus_per_child: float = 0.0,
    ray_address: str | None = None,
) -> SearchResult:
    """Search until ``evaluations`` distinct children are evaluated, with the agent preset's strategy.

    ``n_envs`` > 1 evaluates that many children at once in subprocesses (PPO only). ``backend="ray"`` evaluates
    them on ``workers`` Ray actors (``gpus_per_child`` GPUs each) of the cluster at ``ray_address`` (None: a local
    Ray instance), ``n_envs`` (default: ``workers``) at once, with any strategy (docs/cluster.md).
    ``init_policy``: a trained controller (run folder or policy folder) to start PPO from. Writes the run folder
    and returns its best children; a PPO search also saves its reusable controller. TensorBoard's Pareto plot,
    top-5 table and choice histograms are refreshed every ``plot_every`` evaluations. With ``evaluator: supernet``
    the search uses the supernet saved at ``supernet`` (same search space), or first trains one into
    ``runs/NAME/supernet.pt``.
    """
    env_preset = env if isinstance(env, EnvPreset) else load_env_preset(env)
    agent_preset = agent if isinstance(agent, AgentPreset) else load_agent_preset(agent)
    if evaluations < 1:
        raise ValueError(f"evaluations must be at least 1, got {evaluations}")
    max_steps = DEFAULT_STEPS_PER_EVALUATION * evaluations if max_steps is None else max_steps
    if plot_every < 1:
        raise ValueError(f"plot_every must be at least 1, got {plot_every}")
    if max_steps < evaluations:
        raise ValueError(f"max_steps ({max_steps}) must be at least the number of evaluations ({evaluations})")
    check_backend(backend, workers, gpus_per_child)
    n_envs = (workers if backend == "ray" else 1) if n_envs is None else n_envs
    _check_parallel(n_envs, agent_preset, evaluator, backend)
    if n_envs > 1 and backend == "local" and env_preset.train.threads is None:  # share the cores, not oversubscribe
        threads = max(1, (os.cpu_count() or 1) // n_envs)
        env_preset = dataclasses.replace(env_preset, train=dataclasses.replace(env_preset.train, threads=threads))
    seed = agent_preset.seed if seed is None else seed
    if init_policy is not None:
        env_preset, target_latency_ms = _in_controller_frame(env_preset, init_policy, target_latency_ms)
    space, evaluator = _prepared(env_preset, evaluator, device)
    if target_latency_ms is not None:
        checked_target(env_preset, target_latency_ms)
    if supernet is not None and env_preset.evaluator != "supernet":
        raise ValueError(
            f"--supernet was given but env preset {env_preset.name!r} uses evaluator {env_preset.evaluator}: "
            "add --set evaluator=supernet, or drop --supernet"
        )
    if evaluator is None and gpus_per_child == 0:  # else the workers check their GPUs
        checked_device(device)
    budget = run_budget(env_preset.reward, target_latency_ms)
    if budget is not None and evaluator is None and env_preset.evaluator != "tabular":
        check_reachable(env_preset, space, budget)  # before the run folder exists: a bad target costs nothing
    run_dir = Path(runs_dir) / checked_run_name(run_name or default_run_name(env_preset, agent_preset, seed))
    if run_dir.exists() and any(run_dir.iterdir()):
        raise FileExistsError(f"{run_dir} already exists and is not empty: choose another --run-name or remove it")
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    settings = RunSettings(
        strategy=agent_preset.algo, evaluations=evaluations, max_steps=max_steps, n_envs=n_envs, seed=seed,
        device=device, rlnas_version=rlnas.__version__,
        target_latency_ms=target_latency_ms or env_preset.reward.latency_target,
        space_fingerprint=space.fingerprint, init_policy=str(init_policy) if init_policy else None,
        plot_every=plot_every, supernet=str(supernet) if supernet else None, backend=backend, workers=workers,
        gpus_per_child=gpus_per_child, ray_address=ray_address,
    )  # fmt: skip
    resolved = {"env": to_dict(env_preset), "agent": to_dict(agent_preset), "search": settings.as_dict()}
    try:
        with resumable(run_dir):
            (run_dir / CONFIG_FILE).write_text(yaml.safe_dump(resolved, sort_keys=False))
            if command:
                (run_dir / "command.txt").write_text(command + "\n")
            with run_lock(run_dir):
                return _run(run_dir, env_preset, agent_preset, settings, space, evaluator, progress_bar, resume=False)
    except BaseException:
        remove_if_unused(run_dir, created)
        raise


def _in_controller_frame(
    env_preset: EnvPreset, init_policy: str | Path, target_latency_ms: float | None
) -> tuple[EnvPreset, float | None]:
    """The preset and latency target of a search that starts from the controller at ``init_policy``.

    The observation is the target over the preset's ``reward.target_ms``; a controller trained on a preset with
    another ``target_ms`` reads it on that scale. So the run takes the controller's reference as its
    ``target_ms`` and keeps its own budget as an explicit target: the controller sees the new budget as the
    ratio it would have seen when it was trained, and the run's budget, summary and export are unchanged.
    """
    reference, current = load_controller(init_policy).reference_ms, env_preset.reward.latency_target
    if reference is None or current is None or reference == current:
        return env_preset, target_latency_ms
    reward = dataclasses.replace(env_preset.reward, target_ms=reference)
    return dataclasses.replace(env_preset, reward=reward), target_latency_ms or current


def read_run_config(run_dir: str | Path) -> dict:
    """A run's resolved presets and search settings (its ``config.yaml``: ``env``, ``agent``, ``search``)."""
    config_file = Path(run_dir) / CONFIG_FILE
    if not config_file.is_file():
        raise FileNotFoundError(f"no {CONFIG_FILE} in {run_dir}: give a run folder written by `rlnas search`")
    resolved = read_yaml(config_file)
    if not isinstance(resolved, dict) or not all(isinstance(resolved.get(k), dict) for k in ("env", "agent", "search")):
        raise ConfigError(f"{config_file} is not a run configuration written by `rlnas search`")
    return resolved


def resume_search(
    run_dir: str | Path,
    *,
    evaluations: int | None = None,
    max_steps: int | None = None,
    progress_bar: bool = True,
    evaluator: Evaluator | None = None,
    ray_address: str | None = None,
) -> SearchResult:
    """Continue a search that stopped (killed, crashed or interrupted) from its run folder.

    PPO restarts from the last checkpoint; the steps after it are proposed again and answered from the store,
    so no child is evaluated twice and the run ends with the planned number of evaluations. ``evaluations`` and
    ``max_steps`` raise the run's budget (a finished run then continues; see :func:`extended_budget`). Refused
    while another process holds the run, and when the store lost what the last checkpoint or the summary recorded.
    A run on ``--backend ray`` resumes on its cluster, or on the one at ``ray_address`` when given.
    """
    run_dir = Path(run_dir)
    resolved = read_run_config(run_dir)
    if resolved["search"].get("rlnas_version") != rlnas.__version__:
        raise ConfigError(
            f"{run_dir} was written by rlnas {resolved['search'].get('rlnas_version')!r}, this is "
            f"{rlnas.__version__}: resume it with that version, or start a new search"
        )
    settings = RunSettings.from_dict(resolved["search"], str(run_dir / CONFIG_FILE))
    if evaluations is not None or max_steps is not None:
        settings = extended_budget(settings, evaluations, max_steps)
    if ray_address is not None:
        if settings.backend != "ray":
            raise ConfigError(f"--ray-address: {run_dir} evaluates its children locally, not on a Ray cluster")
        settings = dataclasses.replace(settings, ray_address=ray_address)
    with run_lock(run_dir):
        return _resume(run_dir, resolved, settings, progress_bar, evaluator)


def _resume(
    run_dir: Path, resolved: dict, settings: RunSettings, progress_bar: bool, evaluator: Evaluator | None
) -> SearchResult:
    env_preset, agent_preset = load_env_preset(resolved["env"]), load_agent_preset(resolved["agent"])
    space, evaluator = _prepared(env_preset, evaluator, settings.device)
    if space.fingerprint != settings.space_fingerprint:
        raise ConfigError(
            f"{run_dir} searched space {settings.space_fingerprint}, but its preset now makes space "
            f"{space.fingerprint} (the search space code changed?): start a new search"
        )
    check_store(run_dir / STORE_FILE, run_dir / CHECKPOINT_DIR, run_dir / "summary.json")
    if _finished(run_dir, settings):
        return _result(run_dir, budget_of_run(resolved))
    with resumable(run_dir):
        if settings.as_dict() != resolved["search"]:  # the raised budget is the run's from now on
            write_config(run_dir, {**resolved, "search": settings.as_dict()})
        return _run(run_dir, env_preset, agent_preset, settings, space, evaluator, progress_bar, resume=True)


def _finished(run_dir: Path, settings: RunSettings) -> bool:
    store = EvaluationStore(run_dir / STORE_FILE)
    try:
        done = len(store) >= settings.evaluations or store.step_count() >= settings.max_steps
    finally:
        store.close()
    return done and (run_dir / "summary.json").is_file()


def _result(run_dir: Path, budget: Budget | None) -> SearchResult:
    """The result of a finished run, from its folder."""
    store = EvaluationStore(run_dir / STORE_FILE)
    try:
        count, best = len(store), best_children(store.records(), budget, 5)
    finally:
        store.close()
    controller = load_controller(run_dir) if (run_dir / "policy").is_dir() else None
    return SearchResult(run_dir, count, best, controller)


def _run(
    run_dir: Path,
    env_preset: EnvPreset,
    agent_preset: AgentPreset,
    settings: RunSettings,
    space: Space,
    evaluator: Evaluator | None,
    progress_bar: bool,
    resume: bool,
) -> SearchResult:
    store = EvaluationStore(run_dir / STORE_FILE)
    store.release_claims()  # no environment of this run is evaluating anything now
    if store.get_meta("space_fingerprint") not in (None, space.fingerprint):
        raise ConfigError(f"{run_dir / STORE_FILE} holds children of another search space: start a new search")
    store.set_meta("space_fingerprint", space.fingerprint)
    supernet = None
    if evaluator is None and env_preset.evaluator == "supernet":  # trained once, read by every environment
        supernet = supernet_for_run(
            env_preset, settings.supernet, run_dir, device=settings.device, progress_bar=progress_bar
        )
    with _backend(env_preset, settings, space, supernet) as remote:
        evaluator = remote or evaluator
        views = {"progress_bar": progress_bar, "supernet": supernet, "resume": resume}
        return _search(run_dir, env_preset, agent_preset, settings, space, store, evaluator, **views)


@contextlib.contextmanager
def _backend(
    env_preset: EnvPreset, settings: RunSettings, space: Space, supernet: Path | None
) -> Iterator[Evaluator | None]:
    """The cluster's evaluator for ``--backend ray`` (workers started for the block), else None."""
    if settings.backend != "ray":
        yield None
        return
    with ray_evaluator(env_preset, settings, space, supernet) as remote:
        yield remote


def _search(
    run_dir: Path,
    env_preset: EnvPreset,
    agent_preset: AgentPreset,
    settings: RunSettings,
    space: Space,
    store: EvaluationStore,
    evaluator: Evaluator | None,
    supernet: Path | None,
    progress_bar: bool,
    resume: bool,
) -> SearchResult:
    logger = _logger(run_dir, resume)
    make_env = functools.partial(
        _make_env, env_preset, device=settings.device, store_path=run_dir / STORE_FILE,
        target_latency_ms=settings.target_latency_ms, evaluator=evaluator, max_evaluations=settings.evaluations,
        supernet=supernet,
    )  # fmt: skip
    budget = run_budget(env_preset.reward, settings.target_latency_ms)
    views = {"operators": space.operators, "plot_every": settings.plot_every, "progress_bar": progress_bar}
    views |= {"budget": budget, "parse": space.parse}
    context = SearchContext(make_env, env_preset, settings, space, store, logger, views, run_dir, resume)
    started = time.time()
    try:
        controller = search_strategy(agent_preset).search(context)
        resolved = {"env": to_dict(env_preset), "agent": to_dict(agent_preset), "search": settings.as_dict()}
        log_hparams(logger, resolved, store.best(1)[0]["reward"], store.step_count())
    finally:
        logger.close()
    elapsed = time.time() - started

    best = write_summary(run_dir, store.records(), store.step_count(), settings.as_dict(), elapsed, budget)
    if controller is not None:
        top = best[0] if best else store.best(1)[0]
        trained = {"evaluations": len(store), "best_arch": top["arch"], "best_reward": top["reward"]}
        controller.save(run_dir / "policy", env_preset, {"trained": trained})
    count = len(store)
    store.close()
    return SearchResult(run_dir, count, best, controller)


def _make_env(
    preset: EnvPreset,
    *,
    device: str,
    evaluator: Evaluator | None,
    supernet: Path | None,
    sequential: bool = False,
    **kwargs,
) -> Monitor:
    """One environment of the search (built in a subprocess with ``n_envs`` > 1)."""
    evaluator = evaluator if evaluator is not None else make_evaluator(preset, device, supernet)
    env = preset_env(preset, device=device, evaluator=evaluator, **kwargs)
    return Monitor(SequentialDesign(env) if sequential else env)


def _prepared(preset: EnvPreset, evaluator: Evaluator | None, device: str) -> tuple[Space, Evaluator | None]:
    """The run's space, and its evaluator: ``evaluator`` as given, or for a preset that prunes a model the one
    built here, once (the trained model is shared by every environment, copied into subprocesses)."""
    if evaluator is None and preset.model is not None:
        evaluator = make_evaluator(preset, device)
    return (evaluator.space if evaluator is not None else space_for(preset)), evaluator


def _check_parallel(n_envs: int, agent: AgentPreset, evaluator: Evaluator | None, backend: str) -> None:
    if n_envs < 1:
        raise ValueError(f"--n-envs must be at least 1, got {n_envs}")
    if backend == "ray" and evaluator is not None:
        raise ValueError("--backend ray: the workers build their own evaluators; give no evaluator object")
    if n_envs > 1 and backend == "local" and not search_strategy(agent).parallel:
        raise ValueError(f"--n-envs {n_envs} is for PPO searches; the {agent.algo} strategy runs one environment")
    if n_envs > 1 and evaluator is not None:
        raise ValueError("parallel environments build their own evaluators: give no evaluator object with n_envs > 1")


def _logger(run_dir: Path, resume: bool) -> Logger:
    """SB3's logger writing TensorBoard events and CSV (a resumed run writes its CSV beside the first one)."""
    csv_name = "progress.csv"
    if resume:
        csv_name = f"progress.resumed-{len(list(run_dir.glob('progress.resumed-*.csv'))) + 1}.csv"
    return Logger(str(run_dir), [TensorBoardOutputFormat(str(run_dir)), CSVOutputFormat(str(run_dir / csv_name))])
