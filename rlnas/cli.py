"""The ``rlnas`` command line: each subcommand is one call into the Python API."""

from __future__ import annotations

import argparse
import shlex
import sqlite3
import sys
from pathlib import Path

from rlnas.config import STRATEGIES, ConfigError
from rlnas.training.data import DataError

DEFAULT_EVALUATIONS = 16
RESUME_KEEPS = ("env", "set", "strategy", "agent", "agent_set", "n_envs", "init_policy", "run_name", "runs_dir",
                "device", "seed", "target_latency", "supernet", "plot_every", "backend", "workers",
                "gpus_per_child")  # fmt: skip
"""``search`` options a resumed run takes from its own config.yaml (giving them with ``--resume`` is an error)."""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``rlnas`` console script.

    An rlnas error ends the command with one line on stderr and no traceback: exit code 2 for bad input (presets,
    arguments, files), 1 when the machine stops it (a read-only folder, a full disk), 130 on Ctrl-C.
    """
    args = _parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except (ConfigError, DataError, FileExistsError, FileNotFoundError, ValueError) as err:
        return _error(args, err, 2)
    except (OSError, sqlite3.Error) as err:
        return _error(args, err, 1)
    except KeyboardInterrupt:
        print(f"rlnas {args.command}: interrupted; every child evaluated so far is in the run's store", file=sys.stderr)
        return 130


def _error(args: argparse.Namespace, err: BaseException, code: int) -> int:
    message = " ".join(line.strip() for line in str(err).splitlines()) or type(err).__name__
    print(f"rlnas {args.command}: error: {message}", file=sys.stderr)
    return code


def _search(args: argparse.Namespace) -> int:
    from rlnas.config import load_agent_preset, load_env_preset
    from rlnas.search import resume_search, run_search

    if args.resume:
        given = [f"--{dest.replace('_', '-')}" for dest in RESUME_KEEPS if getattr(args, dest) != args.defaults[dest]]
        if given:
            raise ValueError(
                f"--resume continues {args.resume} with the settings in its config.yaml; {', '.join(given)} cannot "
                "change them (only --evaluations and --max-steps, to raise the budget): drop them"
            )
        result = resume_search(
            args.resume, evaluations=args.evaluations, max_steps=args.max_steps, progress_bar=not args.no_progress,
            ray_address=args.ray_address,
        )  # fmt: skip
    else:
        agent = load_agent_preset(args.agent or args.strategy or "ppo", args.agent_set)
        if args.strategy and agent.algo != args.strategy:
            raise ValueError(
                f"--agent {args.agent} is for strategy {agent.algo}, not {args.strategy}: drop one of the two"
            )
        env = load_env_preset(args.env, args.set)
        evaluations = DEFAULT_EVALUATIONS if args.evaluations is None else args.evaluations
        result = run_search(
            env, agent, evaluations=evaluations, max_steps=args.max_steps, n_envs=args.n_envs,
            run_name=args.run_name, runs_dir=args.runs_dir, device=args.device, seed=args.seed,
            target_latency_ms=args.target_latency, init_policy=args.init_policy,
            progress_bar=not args.no_progress, command=shlex.join(["rlnas", *sys.argv[1:]]),
            plot_every=args.plot_every, supernet=args.supernet, backend=args.backend, workers=args.workers,
            gpus_per_child=args.gpus_per_child, ray_address=args.ray_address,
        )  # fmt: skip
    print(f"\n{result.evaluations} children evaluated; run folder: {result.run_dir}")
    print((result.run_dir / "summary.md").read_text())
    print(f"TensorBoard: tensorboard --logdir {result.run_dir}")
    if result.controller is not None:
        print(f"Reuse the policy: rlnas sample --run {result.run_dir} --top-k 5")
    print(f"Pareto front: rlnas report --run {result.run_dir}")
    if result.best:
        print(f"Chosen child: {result.best[0]['arch']} (validation accuracy {result.best[0]['accuracy']:.4f})")
        print(f"Train it for real and export it: rlnas export --run {result.run_dir}")
    return 0


def _sample(args: argparse.Namespace) -> int:
    from rlnas.sample import sample_architectures

    rows = sample_architectures(
        args.run or args.policy, top_k=args.top_k, target_latency_ms=args.target_latency,
        stochastic=args.stochastic, seed=args.seed, evaluate=args.evaluate, device=args.device,
    )  # fmt: skip
    for i, row in enumerate(rows, 1):
        line = f"{i:>3}  p={row['probability']:.4f}  {row['arch']}"
        if "reward" in row:
            line += f"  acc={row['accuracy']:.4f} lat={row['latency_ms']:.3f}ms reward={row['reward']:.4f}"
        print(line)
    return 0


def _export(args: argparse.Namespace) -> int:
    from rlnas.export import ExportError, export_child
    from rlnas.export_pruned import export_pruned
    from rlnas.search import read_run_config
    from rlnas.training.trainer import TrainingDiverged

    try:
        if read_run_config(args.run)["env"].get("model") is None:
            result = export_child(
                args.run, args.arch, init=args.init, epochs=args.epochs, finetune_epochs=args.finetune_epochs,
                device=args.device, out=args.out, onnx=not args.no_onnx, progress=not args.no_progress,
            )  # fmt: skip
        elif args.init or args.epochs is not None:
            raise ValueError(
                f"{args.run} pruned a trained model: --init and --epochs train searched architectures; its plan is "
                "fine-tuned (--finetune-epochs)"
            )
        else:
            result = export_pruned(
                args.run, args.arch, finetune_epochs=args.finetune_epochs, device=args.device, out=args.out,
                onnx=not args.no_onnx, progress=not args.no_progress,
            )  # fmt: skip
    except (ExportError, TrainingDiverged) as err:
        print(f"rlnas export: error: {err}", file=sys.stderr)
        return 2
    print((result.folder / "report.md").read_text())
    print(f"export folder: {result.folder}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from rlnas.report import COST_LABELS, markdown_table, report_run

    report = report_run(args.run, args.plot)
    print(f"Pareto front of {args.run} (accuracy up, {COST_LABELS[report.cost]} down): "
          f"{len(report.front)} of {report.evaluated} evaluations")  # fmt: skip
    print(markdown_table(report.front))
    if report.budget is not None:
        print(f"budget {report.budget.describe()}: {report.within_budget} of {report.evaluated} children within it")
    print(f"plot: {report.plot}")
    return 0


def _latency_build(args: argparse.Namespace) -> int:
    import dataclasses

    from rlnas.config import load_env_preset
    from rlnas.envs.evaluators import checked_device, space_for
    from rlnas.latency import torch_threads
    from rlnas.latency.build import build_table
    from rlnas.latency.source import default_table_path

    preset = load_env_preset(args.env, args.set)
    changes = {"device": args.device, "threads": args.threads, "batch_size": args.batch, "repeats": args.repeats}
    cfg = dataclasses.replace(preset.latency, **{k: v for k, v in changes.items() if v is not None})
    checked_device(cfg.device)
    out = args.out or default_table_path(preset.name, cfg)
    with torch_threads(cfg.threads):
        table = build_table(space_for(preset), cfg, rounds=args.rounds, fit=args.fit)
    table.save(out)
    print(
        f"latency table for {preset.name} ({table.device_name}, {cfg.threads} threads, batch {cfg.batch_size}): {out}"
    )
    print(f"Check it against measurement: rlnas latency validate --table {out} --samples 50")
    if out == default_table_path(preset.name, cfg):
        print(f"Searches on {preset.name} with latency.source auto (the default) now use it.")
    return 0


def _latency_validate(args: argparse.Namespace) -> int:
    import json

    from rlnas.latency import torch_threads
    from rlnas.latency.table import LatencyTable
    from rlnas.latency.validate import plot_validation, validate
    from rlnas.space import SearchSpace

    if not args.table.is_file():
        raise FileNotFoundError(f"no latency table at {args.table}: build one with `rlnas latency build --env PRESET`")
    space = SearchSpace.from_declaration(json.loads(args.table.read_text())["space"])
    table = LatencyTable.load(args.table, space)
    with torch_threads(table.threads):
        result = validate(table, space, args.samples, args.seed)
    for name, value in result.summary().items():
        print(f"{name}: {value:.3f}")
    plot = plot_validation(result, args.plot or args.table.with_suffix(".png"))
    print(f"scatter plot: {plot}")
    return 0


def _supernet_train(args: argparse.Namespace) -> int:
    import time

    from rlnas.config import load_env_preset
    from rlnas.envs.supernet_evaluator import SUPERNET_FILE, train_preset_supernet
    from rlnas.training.data import load_data

    preset = load_env_preset(args.env, args.set)
    out = args.out or Path("runs") / "supernets" / f"{preset.name}__{int(time.time())}" / SUPERNET_FILE
    train_preset_supernet(
        preset, load_data(preset.data), out=out, device=args.device, log_dir=out.parent,
        progress_bar=not args.no_progress,
    )  # fmt: skip
    print(f"supernet for {preset.name}: {out}  (TensorBoard: tensorboard --logdir {out.parent})")
    switch = "" if preset.evaluator == "supernet" else " --set evaluator=supernet"
    print(f"Search with it: rlnas search --env {args.env}{switch} --supernet {out}")
    return 0


def _presets(args: argparse.Namespace) -> int:
    from rlnas.presets import available_presets, resolve_preset

    for kind in ("envs", "agents"):
        print(f"{kind}:")
        for name in available_presets(kind):
            print(f"  {name:<16} {resolve_preset(name, kind)}")
    return 0


def _add_env_arguments(parser: argparse.ArgumentParser) -> None:
    """``--env`` (preset name or YAML path) and ``--set KEY=VALUE`` (repeatable preset overrides)."""
    parser.add_argument("--env", default="fashion_mnist", help="env preset name or YAML path (default: %(default)s)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override an env preset key, e.g. train.steps=50",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlnas", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    search = sub.add_parser("search", help="search architectures and keep-ratios with PPO or a baseline")
    _add_env_arguments(search)
    search.add_argument(
        "--strategy", choices=sorted(STRATEGIES), help="search strategy (default: the --agent preset's, else ppo)"
    )
    search.add_argument("--agent", help="strategy preset name or YAML path (default: agents/<strategy>.yaml)")
    search.add_argument(
        "--agent-set", action="append", default=[], metavar="KEY=VALUE", help="override a strategy preset key"
    )
    search.add_argument(
        "--evaluations",
        type=int,
        help=f"distinct children to evaluate (default: {DEFAULT_EVALUATIONS}; with --resume: raise the run's budget)",
    )
    search.add_argument(
        "--max-steps", type=int, help="most steps, children answered from the store included (default: 10x)"
    )
    search.add_argument(
        "--n-envs", type=int, help="children evaluated at once (PPO; any strategy on ray; default: 1, on ray --workers)"
    )
    search.add_argument("--init-policy", type=Path, help="PPO: start from a trained controller (run or policy folder)")
    search.add_argument(
        "--resume",
        type=Path,
        metavar="RUN",
        help="continue a stopped search from its run folder, with its own settings (docs/inputs.md)",
    )
    search.add_argument("--run-name", help="folder name under --runs-dir (default: {preset}__ppo__{seed}__{time})")
    search.add_argument("--runs-dir", type=Path, default=Path("runs"), help="(default: %(default)s)")
    search.add_argument("--device", default="cpu", help="where children train: cpu or cuda (default: %(default)s)")
    search.add_argument("--seed", type=int, help="controller seed (default: the agent preset's)")
    search.add_argument("--target-latency", type=float, help="latency target in ms (default: the env preset's)")
    search.add_argument("--no-progress", action="store_true", help="no progress bar")
    search.add_argument(
        "--supernet", type=Path, help="a trained supernet for evaluator: supernet (default: train one in the run)"
    )
    search.add_argument(
        "--plot-every", type=int, default=16, help="refresh TensorBoard's Pareto plot every N children (default: 16)"
    )
    search.add_argument(
        "--backend", choices=("local", "ray"), default="local", help="where children are evaluated (docs/cluster.md)"
    )
    search.add_argument("--ray-address", help="ray: auto (the cluster this machine joined) or ray://HOST:10001")
    search.add_argument("--workers", type=int, default=1, help="ray: worker actors (default: %(default)s)")
    search.add_argument(
        "--gpus-per-child", type=float, default=0.0, help="ray: GPUs per worker, children train on cuda (default: 0)"
    )
    search.set_defaults(func=_search)
    search.set_defaults(defaults={dest: search.get_default(dest) for dest in RESUME_KEEPS})

    sample = sub.add_parser("sample", help="propose architectures with a trained controller")
    source = sample.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", type=Path, help="a run folder written by `rlnas search`")
    source.add_argument("--policy", type=Path, help="a controller folder (controller.json + policy.safetensors)")
    sample.add_argument("--top-k", type=int, default=5, help="how many architectures (default: %(default)s)")
    sample.add_argument("--target-latency", type=float, help="latency target in ms (default: the trained one)")
    sample.add_argument("--stochastic", action="store_true", help="draw samples instead of the most likely")
    sample.add_argument("--seed", type=int, default=0, help="seed for --stochastic (default: %(default)s)")
    sample.add_argument("--evaluate", action="store_true", help="train and measure each proposal")
    sample.add_argument("--device", default="cpu", help="where --evaluate trains (default: %(default)s)")
    sample.set_defaults(func=_sample)

    export = sub.add_parser(
        "export", help="train the best child fully (a pruning run: fine-tune its plan), test and export it"
    )
    export.add_argument("--run", type=Path, required=True, help="a run folder written by `rlnas search`")
    export.add_argument("--arch", help="the architecture (or keep:... plan) to export (default: the run's best)")
    export.add_argument(
        "--epochs", type=int, help="training epochs at full width (default: 2, or the search's train.steps if more)"
    )
    export.add_argument(
        "--finetune-epochs", type=int, help="fine-tuning epochs (default: 1, or the search's finetune_steps if more)"
    )
    export.add_argument(
        "--init",
        choices=("scratch", "supernet"),
        help="scratch (default): train the child from scratch; supernet (a run searched with a supernet): fine-tune "
        "it from the weights it inherits from the run's supernet",
    )
    export.add_argument("--device", default="cpu", help="where it trains: cpu or cuda (default: %(default)s)")
    export.add_argument("--out", type=Path, help="export folder (default: RUN/exports/<best | arch>)")
    export.add_argument("--no-onnx", action="store_true", help="do not write model.onnx")
    export.add_argument("--no-progress", action="store_true", help="no progress bars")
    export.set_defaults(func=_export)

    report = sub.add_parser("report", help="print a run's Pareto front and plot accuracy against latency")
    report.add_argument("--run", type=Path, required=True, help="a run folder written by `rlnas search`")
    report.add_argument("--plot", type=Path, help="PNG file (default: RUN/pareto.png)")
    report.set_defaults(func=_report)

    latency = sub.add_parser("latency", help="per-device latency lookup tables")
    latency_sub = latency.add_subparsers(dest="latency_command", required=True)
    build = latency_sub.add_parser("build", help="time every layer configuration of a space on this device")
    _add_env_arguments(build)
    build.add_argument("--device", help="cpu or cuda (default: the preset's latency.device)")
    build.add_argument("--threads", type=int, help="torch threads (default: the preset's latency.threads)")
    build.add_argument("--batch", type=int, help="batch size (default: the preset's latency.batch_size)")
    build.add_argument("--rounds", type=int, default=15, help="interleaved timing rounds (default: %(default)s)")
    build.add_argument("--repeats", type=int, default=10, help="timed calls per round (default: %(default)s)")
    build.add_argument("--fit", choices=("intercept", "operators", "affine"), default="intercept",
                       help="overhead fit the predictions use (rlnas.latency.table; default: %(default)s)")  # fmt: skip
    build.add_argument("--out", type=Path, help="table file (default: runs/latency/{preset}__{device}__t*__b*.json)")
    build.set_defaults(func=_latency_build)
    check = latency_sub.add_parser("validate", help="compare a table's predictions with end-to-end measurements")
    check.add_argument("--table", type=Path, required=True, help="a file written by `rlnas latency build`")
    check.add_argument("--samples", type=int, default=50, help="random children to measure (default: %(default)s)")
    check.add_argument("--seed", type=int, default=1234, help="(default: %(default)s)")
    check.add_argument("--plot", type=Path, help="scatter plot PNG (default: beside the table)")
    check.set_defaults(func=_latency_validate)

    supernet = sub.add_parser("supernet", help="weight-sharing supernets for evaluator: supernet")
    supernet_sub = supernet.add_subparsers(dest="supernet_command", required=True)
    train = supernet_sub.add_parser("train", help="train a supernet with the env preset's supernet settings")
    _add_env_arguments(train)
    train.add_argument("--out", type=Path, help="file to write (default: runs/supernets/{preset}__{time}/supernet.pt)")
    train.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(func=_supernet_train)

    presets = sub.add_parser("presets", help="list the shipped env and agent presets")
    presets.set_defaults(func=_presets)
    return parser


if __name__ == "__main__":
    sys.exit(main())
