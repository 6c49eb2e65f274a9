"""Children per second with the Ray backend (1 and 2 workers) beside the local backend, and a calibrated
simulation of 1 to 256 workers.

Measured: random searches (no controller in the way) on the digits scratch evaluator and on the Fashion-MNIST
supernet evaluator (a small supernet the bench trains first, shared by every run), each on the local backend
and on a local Ray instance with 1 and 2 workers. Children per second is taken between the first and the last
stored child (Ray's and the workers' start-up excluded). The load average is recorded, and so is the machine's
ceiling: how much faster two plain processes (no Ray) do two CPU-bound jobs than one does; on a shared machine
it falls below 2 and bounds the 2-worker figure.

Simulated (bench/_scale_sim.py): the driver's measured costs (a stored child, a proposal batch, a PPO update),
the measured digits child times (their spread included), for 1 to 256 workers, with rlnas's synchronous PPO
rollouts (default and recommended settings) and the asynchronous loop the baselines use.

    python bench/scale_out.py --quick        # digits only, about 2 minutes
    python bench/scale_out.py                # digits and Fashion-MNIST (needs dataset-fashion-mnist)
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import os
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _record import record
from _scale_sim import Draws, DriverCosts, efficiency, simulate_async, simulate_sync
from stable_baselines3.common.vec_env import DummyVecEnv

from rlnas.agents.ppo import make_ppo
from rlnas.config import EnvPreset, load_agent_preset, load_env_preset
from rlnas.envs.child_net import ChildNetEnv
from rlnas.envs.evaluators import EvalResult, space_for
from rlnas.envs.supernet_evaluator import train_preset_supernet
from rlnas.search import run_search
from rlnas.training.data import load_data

WORKERS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
PHASES = ("train_s", "prune_s", "finetune_s", "eval_s", "latency_s")


def _spin(_: int) -> None:
    """A fixed CPU-bound job on one thread (torch matrix products, as a child's training is)."""
    torch.set_num_threads(1)
    a = torch.randn(256, 256)
    for _ in range(2000):
        a = torch.tanh(a @ a * 0.01)


def machine_ceiling() -> float:
    """How much faster two processes do two jobs than one process does one each, on this machine now, without
    Ray: the most the 2-worker measurement can show while other work shares the cores (2.0 on an idle machine)."""
    seconds = []
    for n in (1, 2):
        with multiprocessing.get_context("spawn").Pool(n) as pool:
            pool.map(_spin, [0] * n)  # start-up and imports outside the timing
            clock = time.perf_counter()
            pool.map(_spin, range(n))
            seconds.append(time.perf_counter() - clock)
    return 2 * seconds[0] / seconds[1]


def measure(preset: EnvPreset, children: int, runs: Path, supernet: Path | None) -> list[dict]:
    """One random search per backend setting; children per second between the first and last stored child."""
    rows = []
    for name, options in (("local", {}), ("ray 1", {"backend": "ray", "workers": 1}),
                          ("ray 2", {"backend": "ray", "workers": 2})):  # fmt: skip
        load = os.getloadavg()[0]
        result = run_search(preset, "random", evaluations=children, runs_dir=runs, run_name=f"{preset.name}-{name}",
                            progress_bar=False, supernet=supernet, **options)  # fmt: skip
        db = sqlite3.connect(result.run_dir / "evaluations.sqlite")
        created = [row[0] for row in db.execute("SELECT created FROM evaluations ORDER BY id")]
        db.close()
        rate = (len(created) - 1) / (created[-1] - created[0])
        child_s = [sum(r[p] for p in PHASES) for r in _records(result.run_dir)]
        rows.append({"backend": name, "children_per_s": rate, "load_before": load, "load_after": os.getloadavg()[0],
                     "child_s": child_s})  # fmt: skip
    return rows


def _records(run_dir: Path) -> list[dict]:
    from rlnas.store import EvaluationStore

    store = EvaluationStore(run_dir / "evaluations.sqlite")
    try:
        return store.records()
    finally:
        store.close()


class InstantEvaluator:
    """Answers every child at once: what is left of a step is the driver's own work."""

    def __init__(self, space) -> None:
        self.space, self.settings = space, {"evaluator": "instant"}
        self.rng = np.random.default_rng(0)

    def evaluate(self, arch) -> EvalResult:
        return EvalResult(str(arch), "ok", float(self.rng.uniform(0.5, 0.9)), float(self.rng.uniform(0.1, 1)), 1, 1, 1)


def driver_costs(preset: EnvPreset, folder: Path) -> tuple[DriverCosts, dict]:
    """Seconds per stored child (a ChildNetEnv step on a file store), per proposal batch, per PPO update."""
    space = space_for(preset)
    env = ChildNetEnv(preset, evaluator=InstantEvaluator(space), store_path=folder / "driver.sqlite")
    actions = [env.action_space.sample() for _ in range(300)]
    clock = time.perf_counter()
    for action in actions:
        env.step(action)
    store_s = (time.perf_counter() - clock) / len(actions)
    env.close()

    agent = load_agent_preset("ppo")
    sizes, propose_s, update_s = (2, 8, 64, 256), [], []
    for r in sizes:
        venv = DummyVecEnv([lambda: ChildNetEnv(preset, evaluator=InstantEvaluator(space))])
        model = make_ppo(dataclasses.replace(agent, n_steps=r, batch_size=r), venv, seed=0)
        model.learn(r)  # fills the rollout buffer (and trains once)
        obs = np.ones((r, 1), dtype=np.float32)
        clock = time.perf_counter()
        for _ in range(5):
            model.policy.predict(obs)
        propose_s.append((time.perf_counter() - clock) / 5)
        clock = time.perf_counter()
        for _ in range(3):
            model.train()
        update_s.append((time.perf_counter() - clock) / 3)
        venv.close()
    propose, update = np.polyfit(sizes, propose_s, 1), np.polyfit(sizes, update_s, 1)
    per_real = 1 + agent.virtual_rollouts  # DyNA-PPO: each real rollout is followed by this many virtual ones
    costs = DriverCosts(
        store_s=store_s,
        propose=lambda k: max(0.0, float(np.polyval(propose, k))),
        update=lambda r: per_real * max(0.0, float(np.polyval(update, r))),
    )
    raw = {"store_s": store_s, "sizes": sizes, "propose_s": propose_s, "update_s": update_s, "per_real": per_real}
    return costs, raw


DEFAULT, RECOMMENDED = "PPO default (n_envs=W, n_steps=8)", "PPO recommended (n_envs=16W, n_steps=1, batch_size=16W)"
SETTINGS = {
    DEFAULT: lambda w, n, draw, costs: simulate_sync(w, w, 8, n, draw, costs),
    "PPO n_envs=4W, n_steps=1, batch_size=4W": lambda w, n, draw, costs: simulate_sync(w, 4 * w, 1, n, draw, costs),
    RECOMMENDED: lambda w, n, draw, costs: simulate_sync(w, 16 * w, 1, n, draw, costs),
    "asynchronous (baselines)": lambda w, n, draw, costs: simulate_async(w, n, draw, costs),
    "PPO with asynchronous updates every 4W (simulated only)": lambda w, n, draw, costs: simulate_async(
        w, n, draw, costs, rollout=4 * w
    ),
}


def simulate(child_s: np.ndarray, costs: DriverCosts, children_per_worker: int) -> dict[str, list[float]]:
    """Efficiency of every setting for every worker count."""
    table = {}
    for name, run in SETTINGS.items():
        table[name] = []
        for w in WORKERS:
            draws = Draws(child_s, seed=w)
            table[name].append(efficiency(run(w, max(children_per_worker * w, 2048), draws, costs), draws, w))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="digits only")
    parser.add_argument("--children", type=int, default=16, help="children per measured run (default: 16)")
    parser.add_argument("--supernet-steps", type=int, default=100, help="Fashion-MNIST supernet training steps")
    parser.add_argument("--sim-children", type=int, default=64, help="simulated children per worker (default: 64)")
    parser.add_argument("--no-record", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load_start = os.getloadavg()
    ceiling = machine_ceiling()
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp)
        digits = load_env_preset("digits")
        measured = {"digits scratch": measure(digits, args.children, runs, None)}
        if not args.quick:
            overrides = ["evaluator=supernet", f"supernet.steps={args.supernet_steps}", "train.threads=1"]
            fashion = load_env_preset("fashion_mnist", overrides)
            supernet = runs / "supernet.pt"
            train_preset_supernet(fashion, load_data(fashion.data), out=supernet, progress_bar=False)
            measured["Fashion-MNIST supernet"] = measure(fashion, args.children, runs, supernet)
        costs, raw_costs = driver_costs(digits, runs)

    lines = ["| evaluator | backend | children/s | x ray 1 | load avg (before, after) |", "|---|---|---:|---:|---|"]
    headlines: dict[str, float | str] = {}
    for evaluator, rows in measured.items():
        base = rows[1]["children_per_s"]
        for row in rows:
            rate, load = row["children_per_s"], f"{row['load_before']:.1f}, {row['load_after']:.1f}"
            lines.append(f"| {evaluator} | {row['backend']} | {rate:.2f} | {rate / base:.2f} | {load} |")
        headlines[f"{evaluator}: speed-up 2 workers / 1"] = round(rows[2]["children_per_s"] / base, 2)

    one_worker = measured["digits scratch"][1]
    child_s = np.asarray(one_worker["child_s"])  # on a Ray worker: the evaluator's own time
    ray_overhead = max(0.0, 1 / one_worker["children_per_s"] - child_s.mean() - costs.store_s)  # dispatch, transfer
    sim = simulate(child_s + ray_overhead, costs, args.sim_children)
    lines += ["", f"Simulated efficiency (digits children: mean {child_s.mean():.2f} s, CV "
              f"{child_s.std() / child_s.mean():.2f}, + {ray_overhead * 1000:.0f} ms Ray overhead; driver: "
              f"{costs.store_s * 1000:.1f} ms per stored child, update of 4W children "
              f"{costs.update(4 * 64) * 1000:.0f} ms at W=64):", "",
              "| setting | " + " | ".join(f"W={w}" for w in WORKERS) + " |",
              "|---|" + "---:|" * len(WORKERS)]  # fmt: skip
    for name, values in sim.items():
        lines.append(f"| {name} | " + " | ".join(f"{v:.0%}" for v in values) + " |")
    at64 = WORKERS.index(64)
    headlines["simulated efficiency at 64 workers, PPO recommended"] = f"{sim[RECOMMENDED][at64]:.0%}"
    headlines["simulated efficiency at 64 workers, PPO default"] = f"{sim[DEFAULT][at64]:.0%}"
    driver_limit = 1 / (costs.store_s + costs.propose(1))  # children/s the driver can store and propose
    headlines["driver limit (children/s)"] = round(driver_limit, 1)
    saturates = round(driver_limit * (child_s + ray_overhead).mean())
    headlines["workers at which the driver saturates (asynchronous)"] = saturates
    headlines["load average at start (1, 5, 15 min)"] = ", ".join(f"{x:.1f}" for x in load_start)
    headlines["machine's 2-process ceiling without Ray (idle machine: 2.0)"] = round(ceiling, 2)
    record(
        "scale_out",
        "Scale-out: children per second on Ray workers",
        "Random searches on the local backend and on a local Ray instance with 1 and 2 workers (goal: >= 1.8x with "
        "2 workers on digits scratch), and a simulation calibrated on the measured child times and driver costs "
        "(goal: >= 80% efficiency at 64 workers with the recommended settings). This machine has 2 cores shared "
        "with other work: compare the 2-worker speed-up with the machine's 2-process ceiling and the load averages.",
        "\n".join(lines),
        headlines,
        raw={"measured": measured, "driver": raw_costs, "simulated": sim, "workers": WORKERS, "ceiling": ceiling},
        append=not args.no_record,
    )


if __name__ == "__main__":
    main()
