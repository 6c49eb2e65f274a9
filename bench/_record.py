"""Shared by bench scripts: print the figures, rewrite the bench's own section of BENCHMARKS.md, keep history.

BENCHMARKS.md holds one current section per bench, between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``;
a run rewrites its section in place (or appends it the first time). Every recorded run also appends its figures as
one JSON line to ``bench/results/NAME.jsonl``: the history that BENCHMARKS.md no longer keeps.
"""

from __future__ import annotations

import datetime
import json
import platform
import re
import shlex
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "BENCHMARKS.md"
RESULTS = ROOT / "bench" / "results"


def machine() -> str:
    """CPU model, core count and torch version, for the record."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        cpu = next((ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines() if "model name" in ln), cpu)
    return f"{cpu}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"


def section(bench: str, title: str, about: str, table: str, headlines: dict, command: str, when: str) -> str:
    """The Markdown section of one bench, between its markers."""
    lines = [
        f"<!-- bench:{bench} -->",
        f"## {title}",
        "",
        about.strip(),
        "",
        f"Latest run: {when} · command: `{command}`  ",
        f"Machine: {machine()}",
        "",
        table.rstrip(),
        "",
        *[f"- `{name}: {value}`" for name, value in headlines.items()],
        f"<!-- /bench:{bench} -->",
    ]
    return "\n".join(lines)


def replace_section(document: str, bench: str, text: str) -> str:
    """``document`` with the section of ``bench`` replaced by ``text`` (appended when it has none)."""
    pattern = re.compile(rf"<!-- bench:{re.escape(bench)} -->.*?<!-- /bench:{re.escape(bench)} -->", re.DOTALL)
    if pattern.search(document):
        return pattern.sub(lambda _: text, document, count=1)
    return document.rstrip("\n") + "\n\n" + text + "\n"


def record(
    bench: str,
    title: str,
    about: str,
    table: str,
    headlines: dict[str, float | str],
    *,
    raw: dict | None = None,
    append: bool = True,
) -> None:
    """Print the table and ``name: value`` headlines; unless ``append`` is False (a script's ``--no-record``),
    rewrite the bench's section of BENCHMARKS.md and append the figures (plus ``raw``) to its JSON-lines history.

    ``bench`` names the section and the history file (``search_quality``); ``about`` says what the bench
    measures and its goal, in a sentence or two.
    """
    print(table)
    for name, value in headlines.items():
        print(f"{name}: {value}")
    if not append:
        return
    command = shlex.join(["python", *sys.argv])
    when = datetime.datetime.now().isoformat(timespec="minutes")
    text = section(bench, title, about, table, headlines, command, when)
    BENCHMARKS.write_text(replace_section(BENCHMARKS.read_text(), bench, text))
    RESULTS.mkdir(parents=True, exist_ok=True)
    entry = {"date": when, "command": command, "machine": machine(), "headlines": headlines, "raw": raw or {}}
    with (RESULTS / f"{bench}.jsonl").open("a") as f:
        f.write(json.dumps(entry, default=str) + "\n")
