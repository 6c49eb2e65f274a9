"""Every example in README.md and docs/*.md stays valid, so the documentation cannot rot unnoticed.

Fenced shell blocks: an ``rlnas`` command must parse with the real command-line parser, its presets and
``--set``/``--agent-set`` overrides must load, the repository files it names must exist; a ``python bench/...``
command must name an existing script and only options that script declares; a ``make`` target must exist in the
Makefile. A block whose first line is ``# unchecked: <why>`` is skipped (keep those few). YAML blocks must parse,
Python blocks must compile; those that need no run folder also run (marked slow: they train or load). Relative
links must resolve.
"""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest
import yaml

from rlnas import cli
from rlnas.config import load_agent_preset, load_env_preset
from rlnas.presets import resolve_preset, resolve_trained

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
SHELL = {"bash", "sh", "shell", "console"}
UNCHECKED = "# unchecked:"
# Commands that are not rlnas's own: only the repository files they name are checked.
EXTERNAL = {".venv/bin/tensorboard", "tensorboard", "git", "cd", "pip"}
# Repository folders whose files a command may name (runs/ and data/ are outputs or user data, not checked).
TRACKED = ("envs/", "agents/", "bench/", "docs/", "scripts/", "tests/", "rlnas/")
# Pages other sessions of issue 18 write in parallel; linked before they land.
PARALLEL_PAGES = {"latency.md", "supernet.md", "trust.md", "inputs.md", "budgets.md", "end-to-end.md"}


def _blocks(languages: set[str]) -> list[tuple[str, str]]:
    """``(page:line, body)`` of every fenced block in one of ``languages``."""
    found = []
    for page in PAGES:
        text = page.read_text()
        for match in FENCE.finditer(text):
            if match.group(1) in languages:
                line = text.count("\n", 0, match.start()) + 1
                found.append((f"{page.relative_to(ROOT)}:{line}", match.group(2)))
    return found


def _commands() -> list[tuple[str, list[str]]]:
    """``(page:line, argv)`` of every command in the checked shell blocks (comments and continuations folded)."""
    commands = []
    for where, body in _blocks(SHELL):
        if body.lstrip().startswith(UNCHECKED):
            continue
        for line in body.replace("\\\n", " ").splitlines():
            for part in line.split("&&"):
                argv = shlex.split(part, comments=True)
                if argv:
                    commands.append((where, argv))
    return commands


def _option_values(argv: list[str], option: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == option]


def _check_tracked_paths(argv: list[str]) -> None:
    for arg in argv:
        for word in re.split(r"[=,]", arg):
            if word.startswith(TRACKED) and not any(c in word for c in "<*{"):
                assert (ROOT / word).exists(), f"{word} does not exist"


def _option_strings(parser: argparse.ArgumentParser) -> set[str]:
    """Every option string of ``parser`` and its sub-commands (to refuse abbreviations, which argparse allows)."""
    options = set()
    for action in parser._actions:
        options.update(action.option_strings)
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                options |= _option_strings(sub)
    return options


def _check_spelling(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    spelled = {arg.split("=")[0] for arg in argv if arg.startswith("--")}
    assert spelled <= _option_strings(parser), f"abbreviated or unknown options: {spelled - _option_strings(parser)}"


def _check_rlnas(argv: list[str]) -> None:
    parser = cli._parser()
    args = parser.parse_args(argv)  # exits (fails the test) on an unknown command or option
    _check_spelling(parser, argv)
    if hasattr(args, "env") and not getattr(args, "resume", None):
        _check_overrides(argv)
    if getattr(args, "agent", None) or getattr(args, "agent_set", None):
        load_agent_preset(resolve_preset(args.agent or args.strategy or "ppo", "agents"), args.agent_set)
    for option in ("--policy", "--init-policy"):
        for value in _option_values(argv, option):
            if not value.startswith("runs/"):
                assert resolve_trained(value).is_dir(), f"{option} {value}: no such trained controller"


def _check_overrides(argv: list[str]) -> None:
    """``--set`` overrides load on the ``--env`` preset (default ``fashion_mnist``, as for the CLI and benches)."""
    env = (_option_values(argv, "--env") or ["fashion_mnist"])[0]
    load_env_preset(resolve_preset(env, "envs"), _option_values(argv, "--set"))


def _check_bench(argv: list[str]) -> None:
    script = ROOT / argv[1]
    assert script.is_file(), f"{argv[1]} does not exist"
    source = script.read_text()
    for option in (a.split("=")[0] for a in argv[2:] if a.startswith("--")):
        assert f'"{option}"' in source, f"{argv[1]} has no option {option}"
    _check_overrides(argv)


def _check_make(argv: list[str]) -> None:
    makefile = (ROOT / "Makefile").read_text()
    for target in argv[1:]:
        assert re.search(rf"^{re.escape(target)}:", makefile, re.MULTILINE), f"no make target {target!r}"


@pytest.mark.parametrize(("where", "argv"), _commands(), ids=lambda v: v if isinstance(v, str) else " ".join(v))
def test_shell_command_is_valid(where: str, argv: list[str]) -> None:
    program = argv[0]
    _check_tracked_paths(argv)
    if program in {"rlnas", ".venv/bin/rlnas"}:
        _check_rlnas(argv[1:])
    elif argv[:3] == ["python", "-m", "rlnas.cli"]:
        _check_rlnas(argv[3:])
    elif program == "python" and len(argv) > 1 and argv[1].startswith("bench/"):
        _check_bench(argv)
    elif program == "make":
        _check_make(argv)
    else:
        assert program in EXTERNAL, f"{where}: {program!r} is neither checked nor known; mark the block unchecked"


def test_commands_are_found() -> None:
    """The extraction itself works: the README's quick start and a search command are among the commands."""
    commands = [argv for _, argv in _commands()]
    assert ["make", "search"] in commands and ["make", "test"] in commands
    assert any(argv[:2] == ["rlnas", "search"] for argv in commands)


def test_a_bad_command_is_caught() -> None:
    """The checks fail on the mistakes they exist for."""
    with pytest.raises(SystemExit):
        _check_rlnas(["search", "--evaluatoins", "3"])
    with pytest.raises(AssertionError, match="abbreviated"):
        _check_rlnas(["search", "--evaluation", "3"])
    with pytest.raises(Exception, match=r"no_such_key"):
        _check_rlnas(["search", "--env", "digits", "--set", "train.no_such_key=1"])
    with pytest.raises(AssertionError):
        _check_bench(["python", "bench/search_quality.py", "--no-such-option"])


def _inline_commands() -> list[tuple[str, list[str]]]:
    """``(page, argv)`` of the inline code spans in the prose that name an ``rlnas`` or bench command."""
    spans = []
    for page in PAGES:
        for span in re.findall(r"`((?:rlnas |python bench/)[^`]*)`", page.read_text()):
            spans.append((page.name, shlex.split(span)))
    return spans


@pytest.mark.parametrize(("where", "argv"), _inline_commands(), ids=lambda v: v if isinstance(v, str) else " ".join(v))
def test_inline_command_names_are_valid(where: str, argv: list[str]) -> None:
    """Prose quotes fragments (``rlnas latency build --fit``): their command, options and overrides must exist."""
    if argv[0] == "python":
        _check_bench(argv)
    else:
        parser = cli._parser()
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
        assert argv[1] in commands or argv[1].isupper(), f"{where}: no command rlnas {argv[1]}"
        _check_spelling(parser, argv)
        _check_overrides(argv)


@pytest.mark.parametrize(("where", "body"), _blocks({"yaml"}))
def test_yaml_block_parses(where: str, body: str) -> None:
    assert isinstance(yaml.safe_load(body), dict), where


@pytest.mark.parametrize(("where", "body"), _blocks({"python"}))
def test_python_block_compiles(where: str, body: str) -> None:
    compile(body, where, "exec")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("where", "body"), [(w, b) for w, b in _blocks({"python"}) if "runs/" not in b and "run_search" not in b]
)
def test_python_block_runs(where: str, body: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The examples that need no finished run really run (they train a child or load a controller: seconds)."""
    monkeypatch.chdir(tmp_path)
    exec(compile(body, where, "exec"), {"__name__": "__doc_example__"})


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page: Path) -> None:
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
        path = (page.parent / target).resolve()
        if path.name in PARALLEL_PAGES and path.parent == ROOT / "docs" and not path.exists():
            continue
        assert path.exists(), f"{page.name}: link to {target} does not resolve"
