"""End to end: is the searched child better than the plain networks of the space once both are trained for real?

For each latency budget (the measured latency of the plain CNN, ``conv3x3`` at keep-ratio ``k`` in every layer,
for each ``--plain-keeps`` ``k``): search with the shipped defaults (PPO, and random search and evolution as
baselines; ``--seeds`` controller seeds, ``--evaluations`` children each, the preset's evaluator and one supernet
shared by all searches), take each search's most accurate child within the budget, and train it with the export
procedure (:func:`rlnas.child_training.train_child`, ``--steps`` + ``--finetune-steps``, ``--init``). Train every
uniform member of the space (each operator at each keep-ratio in every layer) within the budget the same way.
Report test accuracy against latency measured here (the preset's latency settings), a Pareto plot, and per
budget and PPO seed: the searched child's test accuracy minus the best uniform member's within the budget, and
its speed-up over the fastest uniform member at least as accurate (up to ``--tolerance``). Goal: at every budget
the searched child is >= 0.5 points more accurate than every uniform member within it, or >= 1.3x faster at no
more than 0.3 points less.

Every trained child is cached in ``bench/results/end_to_end_children.json`` under its training budget and
architecture, so a re-run only trains what it has not seen; searches are kept in ``bench/.cache/end_to_end/``.

    python bench/end_to_end.py [--env fashion_mnist] [--steps 1720 --finetune-steps 860] [--evaluations 100]
        [--seeds 0 1] [--plain-keeps 0.5 0.75 1.0] [--supernet PATH] [--set train.threads=1] [--no-record]
"""

from __future__ import annotations

import argparse
import dataclasses
import fcntl
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import torch
from _record import record

from rlnas.budget import Budget
from rlnas.child_training import INITS, train_child
from rlnas.config import EnvPreset, load_env_preset
from rlnas.envs.evaluators import EvalResult, Evaluator, ScratchEvaluator, space_for
from rlnas.envs.supernet_evaluator import SupernetEvaluator, train_preset_supernet, weights_digest
from rlnas.export import DEFAULT_INIT
from rlnas.latency import count_flops, measure_latency
from rlnas.pruning import build_model, prune_child
from rlnas.search import resume_search, run_search
from rlnas.space import Arch, SearchSpace
from rlnas.store import EvaluationStore
from rlnas.training.data import DataSplits, load_data
from rlnas.training.supernet import Supernet, load_supernet
from rlnas.training.trainer import accuracy

HERE = Path(__file__).resolve().parent
CACHE = HERE / "results" / "end_to_end_children.json"
WORK = HERE / ".cache" / "end_to_end"
PLOT = HERE / "results" / "end_to_end.png"
STRATEGIES = ("ppo", "random", "evolution")
LATENCY_ROUNDS = 3


# ------------------------------------------------------------------------------------------- trained children


def training_key(
    preset: EnvPreset, steps: int, finetune_steps: int, init: str, supernet: Supernet | None = None
) -> str:
    """What decides a trained child's result besides its architecture (the cache's outer key): with ``init``
    ``supernet``, also the supernet's weights."""
    unused = ("threads", "steps", "finetune_steps")  # the bench gives the steps; threads do not change results
    train = {k: v for k, v in dataclasses.asdict(preset.train).items() if k not in unused}
    key = {"preset": preset.name, "space": space_for(preset).fingerprint, "seed": preset.seed, "train": train,
           "init": init, "steps": steps, "finetune_steps": finetune_steps}  # fmt: skip
    if init == "supernet":
        if supernet is None:
            raise ValueError("--init supernet: the key needs the supernet the children start from")
        key["supernet"] = weights_digest(supernet)
    return json.dumps(key, sort_keys=True)


def read_cache() -> dict[str, dict[str, dict]]:
    """``{training key: {architecture: result}}``."""
    return json.loads(CACHE.read_text()) if CACHE.is_file() else {}


def write_cache(cache: dict[str, dict[str, dict]]) -> None:
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    partial = CACHE.with_suffix(".partial")
    partial.write_text(json.dumps(cache, indent=1, sort_keys=True) + "\n")
    partial.replace(CACHE)


class Trainer:
    """Trains children with one budget and init, caching each result as soon as it is known."""

    def __init__(
        self,
        preset: EnvPreset,
        data: DataSplits,
        steps: int,
        finetune_steps: int,
        init: str,
        supernet: Supernet | None,
    ) -> None:
        self.preset, self.data, self.steps, self.finetune_steps, self.init = preset, data, steps, finetune_steps, init
        self.supernet = supernet
        self.key = training_key(preset, steps, finetune_steps, init, supernet)
        self.space = space_for(preset)

    def __call__(self, arch: Arch) -> dict[str, Any]:
        cache = read_cache()
        known = cache.get(self.key, {})
        if str(arch) in known:
            return known[str(arch)]
        trained = train_child(
            self.preset, arch, self.data.train, steps=self.steps, finetune_steps=self.finetune_steps,
            init=self.init, supernet=self.supernet,
        )  # fmt: skip
        model, eval_batch = trained.model, self.preset.train.eval_batch_size
        result = {
            "test_accuracy": accuracy(model, self.data.test, batch_size=eval_batch),
            "val_accuracy": accuracy(model, self.data.val, batch_size=eval_batch),
            "latency_ms": measure_latency(model, self.space.input_shape, self.preset.latency),
            "flops": count_flops(model, self.space.input_shape),
            "seconds": round(sum(trained.seconds.values()), 1),
        }
        print(f"trained {arch}: test {result['test_accuracy']:.4f}, {result['latency_ms']:.3f} ms, "
              f"{result['seconds']:.0f} s", flush=True)  # fmt: skip
        WORK.mkdir(parents=True, exist_ok=True)
        with (WORK / "cache.lock").open("w") as lock:  # helper processes (--shard) write the same file
            fcntl.flock(lock, fcntl.LOCK_EX)
            cache = read_cache()
            cache.setdefault(self.key, {})[str(arch)] = result
            write_cache(cache)
        return result


# ------------------------------------------------------------------------------------------- space and budgets


def default_supernet(preset: EnvPreset) -> Path:
    """Where the bench keeps the supernet it trains with the preset when none is given."""
    return WORK / f"supernet_{preset.name}.pt"


def trained_supernet(preset: EnvPreset, data: DataSplits, path: Path | None) -> tuple[Path, Supernet]:
    """The supernet at ``path`` (default :func:`default_supernet`), trained with the preset first if missing."""
    path = path or default_supernet(preset)
    if not path.is_file():
        train_preset_supernet(preset, data, out=path, progress_bar=False)
    return path, load_supernet(path, space_for(preset))[0]


def uniform_members(space: SearchSpace) -> list[Arch]:
    """Every operator at every keep-ratio in every layer, one per distinct network."""
    members = {space.canonical(space.uniform(op, k)): None for op in space.operators for k in space.keep_ratios}
    return list(members)


def uniform_latencies(preset: EnvPreset, space: SearchSpace) -> dict[str, float]:
    """The latency of every uniform member, pruned, with the preset's latency settings (weights do not change it).

    The least of ``LATENCY_ROUNDS`` measurements, measured once and kept in ``bench/.cache/end_to_end/``: the
    budgets (and so the searches) stay the same across runs on a noisy machine."""
    path = WORK / f"latency_{preset.name}_{space.fingerprint}.json"
    settings = dataclasses.asdict(preset.latency)
    saved = json.loads(path.read_text()) if path.is_file() else {}
    if saved.get("settings") == settings:
        return saved["latency_ms"]
    models = {}
    for arch in uniform_members(space):
        with torch.random.fork_rng(devices=[]):
            models[str(arch)] = prune_child(build_model(space, arch))
    latency = {arch: math.inf for arch in models}
    for _ in range(LATENCY_ROUNDS):  # interleaved rounds: a disturbance only ever adds time, so keep the least
        for arch, model in models.items():
            latency[arch] = min(latency[arch], measure_latency(model, space.input_shape, preset.latency))
    WORK.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"settings": settings, "latency_ms": latency}, indent=1))
    return latency


# ------------------------------------------------------------------------------------------- searches


class SharedEvaluations:
    """One evaluator for every search of the bench: a child already evaluated by another search is not redone.

    Safe because every search uses the same evaluator settings (one preset, one supernet if any). Results are
    also kept on disk under the settings' digest, so searches run in other processes (one per budget) share them.
    """

    def __init__(self, inner: Evaluator) -> None:
        self.inner, self.space = inner, inner.space
        self.settings = getattr(inner, "settings", None)
        digest = hashlib.sha256(json.dumps(self.settings, sort_keys=True, default=str).encode()).hexdigest()[:16]
        self.path = WORK / f"evaluations_{digest}.json"

    def evaluate(self, arch: Arch) -> EvalResult:
        known = json.loads(self.path.read_text()) if self.path.is_file() else {}
        if str(arch) in known:
            return EvalResult.from_record(known[str(arch)])
        result = self.inner.evaluate(arch)
        with (WORK / "cache.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            known = json.loads(self.path.read_text()) if self.path.is_file() else {}
            known[str(arch)] = result.as_dict()
            partial = self.path.with_suffix(".partial")
            partial.write_text(json.dumps(known))
            partial.replace(self.path)
        return result


def searched_records(
    preset: EnvPreset, strategy: str, seed: int, target: float, evaluations: int, evaluator: SharedEvaluations
) -> list[dict]:
    """The store records of a search (run now, or read back from an earlier run with the same settings)."""
    name = f"{preset.name}__{strategy}__s{seed}__t{target:.4f}__n{evaluations}"
    run_dir = WORK / "runs" / name
    if (run_dir / "summary.json").is_file():
        resume_search(run_dir, evaluator=evaluator, progress_bar=False)
    else:
        if run_dir.exists():  # an interrupted search: start it again, its children are shared anyway
            for path in sorted(run_dir.rglob("*"), reverse=True):
                path.rmdir() if path.is_dir() else path.unlink()
        run_search(preset, strategy, evaluations=evaluations, run_name=name, runs_dir=WORK / "runs", seed=seed,
                   target_latency_ms=target, evaluator=evaluator, progress_bar=False)  # fmt: skip
    store = EvaluationStore(run_dir / "evaluations.sqlite")
    try:
        return store.records()
    finally:
        store.close()


# ------------------------------------------------------------------------------------------- figures


def speedup_at_equal_accuracy(child: dict, uniform: list[dict], tolerance: float) -> float | None:
    """Latency of the fastest uniform member at most ``tolerance`` less accurate than ``child``, over the child's.

    None when every uniform member is less accurate than that (the child is then simply more accurate)."""
    peers = [u for u in uniform if u["test_accuracy"] >= child["test_accuracy"] - tolerance]
    return min(u["latency_ms"] for u in peers) / child["latency_ms"] if peers else None


def meets_goal(child: dict, uniform: list[dict]) -> bool:
    """>= 0.5 points more accurate than every uniform member, or >= 1.3x faster at <= 0.3 points less."""
    return all(
        child["test_accuracy"] >= u["test_accuracy"] + 0.005
        or (u["latency_ms"] >= 1.3 * child["latency_ms"] and child["test_accuracy"] >= u["test_accuracy"] - 0.003)
        for u in uniform
    )


def pareto_plot(rows: list[dict], budgets: dict[str, float], path: Path) -> None:
    """Test accuracy against measured latency: uniform members, searched children, the budgets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    styles = {"uniform": ("o", "0.6"), "ppo": ("*", "tab:red"), "random": ("^", "tab:blue"),
              "evolution": ("s", "tab:green")}  # fmt: skip
    for kind, (marker, color) in styles.items():
        pts = {(r["arch"], r["latency_ms"], r["test_accuracy"]) for r in rows if r["kind"] == kind}
        if pts:
            _, x, y = zip(*pts, strict=True)
            ax.scatter(x, y, marker=marker, color=color, s=70 if kind == "ppo" else 30, label=kind, zorder=3)
    unique = {r["arch"]: r for r in rows}.values()
    front, best = [], -1.0
    for r in sorted(unique, key=lambda r: (r["latency_ms"], -r["test_accuracy"])):
        if r["test_accuracy"] > best:
            front.append(r)
            best = r["test_accuracy"]
    ax.step([r["latency_ms"] for r in front], [r["test_accuracy"] for r in front], where="post", color="k", lw=0.8)
    for label, ms in budgets.items():
        ax.axvline(ms, ls="--", lw=0.8, color="0.4")
        ax.annotate(label, (ms, ax.get_ylim()[0]), rotation=90, fontsize=7, va="bottom", ha="right")
    ax.set_xlabel("latency (ms, measured)")
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ------------------------------------------------------------------------------------------- main


def shard(text: str) -> tuple[int, int]:
    k, _, n = text.partition("/")
    if not (k.isdigit() and n.isdigit() and int(k) < int(n)):
        raise argparse.ArgumentTypeError(f"--shard {text!r}: give K/N with 0 <= K < N, e.g. 1/2")
    return int(k), int(n)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="fashion_mnist")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="env preset override")
    parser.add_argument("--steps", type=int, help="training steps per child (default: 2 epochs, as export)")
    parser.add_argument("--finetune-steps", type=int, help="fine-tuning steps (default: 1 epoch, as export)")
    parser.add_argument("--init", choices=INITS, default=DEFAULT_INIT, help="default: %(default)s (export's)")
    parser.add_argument("--evaluations", type=int, default=100, help="children per search (default: %(default)s)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="controller seeds (default: 0 1)")
    parser.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=list(STRATEGIES))
    parser.add_argument("--plain-keeps", type=float, nargs="+", default=[0.5, 0.75, 1.0],
                        help="budgets: the latency of conv3x3 at these keep-ratios everywhere")  # fmt: skip
    parser.add_argument("--tolerance", type=float, default=0.003, help="accuracy tolerance of 'equal accuracy'")
    parser.add_argument("--supernet", type=Path, help="the preset's trained supernet (default: bench/.cache/"
                        "end_to_end/supernet_PRESET.pt, trained first if absent)")  # fmt: skip
    parser.add_argument(
        "--compare-init", action="store_true", help="also train the plain CNNs of the budgets the other way"
    )
    parser.add_argument("--shard", type=shard, default=(0, 1), metavar="K/N",
                        help="train only every N-th child from the K-th (0-based), for a helper process")  # fmt: skip
    parser.add_argument("--no-record", action="store_true", help="print only; do not write BENCHMARKS.md")
    return parser.parse_args()


def main() -> None:
    args = arguments()
    preset = load_env_preset(args.env, args.set)
    if preset.evaluator not in ("supernet", "scratch"):
        raise SystemExit(f"bench/end_to_end.py trains children; {args.env} uses the {preset.evaluator} evaluator")
    space, data = space_for(preset), load_data(preset.data)
    per_epoch = math.ceil(len(data.train) / preset.train.batch_size)
    steps = args.steps if args.steps is not None else 2 * per_epoch
    finetune_steps = args.finetune_steps if args.finetune_steps is not None else per_epoch
    needs_supernet = preset.evaluator == "supernet" or args.init == "supernet" or args.compare_init
    supernet = trained_supernet(preset, data, args.supernet)[1] if needs_supernet else None
    WORK.mkdir(parents=True, exist_ok=True)
    evaluator = SharedEvaluations(
        SupernetEvaluator(preset, supernet, data=data)
        if preset.evaluator == "supernet"
        else ScratchEvaluator(preset, data=data)
    )
    train = Trainer(preset, data, steps, finetune_steps, args.init, supernet)

    latency = uniform_latencies(preset, space)
    budgets = {f"conv3x3@{k:g}": latency[str(space.canonical(space.uniform("conv3x3", k)))] for k in args.plain_keeps}
    children: list[dict] = []  # what to train: every search's best within its budget, then the uniform members
    for label, target in budgets.items():
        for strategy in args.strategies:
            for seed in args.seeds:
                records = searched_records(preset, strategy, seed, target, args.evaluations, evaluator)
                found = Budget("latency", target).best(records)
                if not found:
                    print(f"{strategy} seed {seed} found no child within {label} ({target:.3f} ms)")
                    continue
                children.append({"kind": strategy, "arch": found[0]["arch"], "budget": label, "seed": seed,
                                 "search_accuracy": found[0]["accuracy"],
                                 "search_latency_ms": found[0]["latency_ms"]})  # fmt: skip
        children += [{"kind": "uniform", "arch": arch, "budget": label} for arch, ms in latency.items() if ms <= target]
    shard, shards = args.shard
    mine = {c["arch"] for c in children}
    for i, arch in enumerate(sorted(mine, key=lambda a: [c["arch"] for c in children].index(a))):
        if i % shards == shard:
            train(space.parse(arch))
    if shards > 1:
        return  # a helper process: the run without --shard reports
    rows = []
    for c in children:  # latency: the least measurement of the child (a disturbance only ever adds time)
        r = {**c, **train(space.parse(c["arch"]))}
        r["latency_ms"] = min(r["latency_ms"], latency.get(c["arch"], math.inf), c.get("search_latency_ms", math.inf))
        rows.append(r)
    summary: dict[str, Any] = {}
    for label in budgets:
        uniform = [r for r in rows if r["budget"] == label and r["kind"] == "uniform"]
        best_uniform = max(uniform, key=lambda u: u["test_accuracy"])
        for seed in args.seeds if "ppo" in args.strategies else []:
            found = [r for r in rows if r["budget"] == label and r["kind"] == "ppo" and r["seed"] == seed]
            summary[f"{label} seed {seed}"] = {
                "minus_best_uniform_points": 100 * (found[0]["test_accuracy"] - best_uniform["test_accuracy"]),
                "speedup_at_equal_accuracy": speedup_at_equal_accuracy(found[0], uniform, args.tolerance),
                "meets_goal": meets_goal(found[0], uniform),
            } if found else None  # fmt: skip
    pareto_plot(rows, budgets, PLOT)
    inits = {}
    if args.compare_init:  # the plain CNNs that set the budgets, trained both ways
        archs = [str(space.canonical(space.uniform("conv3x3", k))) for k in args.plain_keeps]
        trainers = {init: Trainer(preset, data, steps, finetune_steps, init, supernet) for init in INITS}
        inits = {a: {init: trainer(space.parse(a)) for init, trainer in trainers.items()} for a in archs}
    report(args, setting(args, preset, steps, finetune_steps, data), steps + finetune_steps, budgets, rows, summary,
           inits)  # fmt: skip


def setting(args: argparse.Namespace, preset: EnvPreset, steps: int, finetune_steps: int, data: DataSplits) -> str:
    """What the run did, in a sentence (above the table)."""
    epochs = (steps + finetune_steps) / math.ceil(len(data.train) / preset.train.batch_size)
    lat = preset.latency
    return (
        f"Preset `{preset.name}` ({evaluator_text(preset)}); searches "
        f"of {args.evaluations} children, seeds {args.seeds}; every child trained {args.init} with {steps} + "
        f"{finetune_steps} steps ({epochs:.2f} epochs, batch {preset.train.batch_size}); test accuracy on the "
        f"{len(data.test)} test images; latency measured here ({lat.device}, {lat.threads} thread, batch "
        f"{lat.batch_size}, {lat.statistic} of {lat.repeats}); uniform members are within a budget by their latency "
        f"measured before training, searched children by the search's. Plot: `{PLOT.relative_to(HERE.parent)}`."
    )


def evaluator_text(preset: EnvPreset) -> str:
    """The search's evaluator and its budget, in words."""
    if preset.evaluator == "supernet":
        return f"evaluator supernet, {preset.supernet.steps} supernet steps"
    return f"evaluator scratch, {preset.train.steps} + {preset.train.finetune_steps} steps per child"


def report(args, intro: str, steps: int, budgets: dict, rows: list[dict], summary: dict, inits: dict) -> None:
    """Print and record the table, the init comparison and the headlines."""
    lines = [
        intro,
        "",
        "| budget | child | seed | search acc. | test acc. | latency (ms) | architecture |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for label, target in budgets.items():
        mine = sorted((r for r in rows if r["budget"] == label), key=lambda r: -r["test_accuracy"])
        for r in mine:
            search_acc = f"{r['search_accuracy']:.4f}" if "search_accuracy" in r else ""
            lines.append(
                f"| {label} ({target:.3f} ms) | {r['kind']} | {r.get('seed', '')} | {search_acc} | "
                f"{r['test_accuracy']:.4f} | {r['latency_ms']:.3f} | `{r['arch']}` |"
            )
    if inits:
        lines += [
            "",
            f"Export init, the same {steps} optimizer steps: from scratch (train at full width, prune, fine-tune) "
            "vs fine-tuned from the supernet's weights (extract the pruned child, fine-tune).",
            "",
            "| architecture | scratch: test acc. | s | supernet: test acc. | s |",
            "|---|---:|---:|---:|---:|",
        ]
        for arch, r in inits.items():
            a, b = r["scratch"], r["supernet"]
            lines.append(
                f"| `{arch}` | {a['test_accuracy']:.4f} | {a['seconds']:.0f} | {b['test_accuracy']:.4f} | "
                f"{b['seconds']:.0f} |"
            )
    headlines: dict[str, Any] = {}
    if inits:
        diff = [r["supernet"]["test_accuracy"] - r["scratch"]["test_accuracy"] for r in inits.values()]
        time_ratio = [r["supernet"]["seconds"] / r["scratch"]["seconds"] for r in inits.values()]
        headlines["init supernet minus scratch, mean (points)"] = round(100 * sum(diff) / len(diff), 2)
        headlines["init supernet / scratch training time, mean"] = round(sum(time_ratio) / len(time_ratio), 2)
    for name, s in summary.items():
        if s is None:
            headlines[f"{name}: PPO"] = "no child within the budget: goal not met"
            continue
        speedup = s["speedup_at_equal_accuracy"]
        headlines[f"{name}: PPO minus best uniform (points)"] = round(s["minus_best_uniform_points"], 2)
        headlines[f"{name}: speed-up at equal accuracy"] = "n/a" if speedup is None else round(speedup, 2)
        headlines[f"{name}: goal met"] = s["meets_goal"]
    record(
        "end_to_end",
        "End to end: searched child vs the uniform members of the space (bench/end_to_end.py)",
        "Test accuracy against measured latency after the same training budget, per latency budget: the "
        "searched child vs every uniform member within the budget. Goal: >= 0.5 points more accurate than every "
        "uniform member within the budget, or >= 1.3x faster at no more than 0.3 points less.",
        "\n".join(lines),
        headlines,
        raw={"rows": rows, "budgets": budgets, "inits": inits},
        append=not args.no_record,
    )


if __name__ == "__main__":
    main()
