"""Shared by bench scripts: print headline figures and append them to BENCHMARKS.md with the command."""

from __future__ import annotations

import datetime
import platform
import shlex
import sys
from pathlib import Path

import torch

BENCHMARKS = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"


def machine() -> str:
    """CPU model, core count and torch version, for the record."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        cpu = next((ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines() if "model name" in ln), cpu)
    return f"{cpu}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"


def record(title: str, table: str, headlines: dict[str, float | str], append: bool = True) -> None:
    """Print the table and ``name: value`` headlines; append the section to BENCHMARKS.md unless ``append`` is
    False (a script's ``--no-record``)."""
    print(table)
    for name, value in headlines.items():
        print(f"{name}: {value}")
    if not append:
        return
    command = shlex.join(["python", *sys.argv])
    lines = [
        f"\n## {title} ({datetime.date.today().isoformat()})",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine()}",
        "",
        table.rstrip(),
        "",
        *[f"- `{name}: {value}`" for name, value in headlines.items()],
        "",
    ]
    with BENCHMARKS.open("a") as f:
        f.write("\n".join(lines))
