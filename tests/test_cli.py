"""Smoke test of the installed ``rlnas`` command in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import yaml

from rlnas.config import to_dict


def rlnas(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rlnas.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_cli_search_then_sample(tmp_path, digits_preset):
    preset = tmp_path / "fast_digits.yaml"
    preset.write_text(yaml.safe_dump(to_dict(digits_preset)))
    done = rlnas("search", "--env", str(preset), "--evaluations", "3", "--run-name", "smoke", "--no-progress",
                 cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "3 children evaluated" in done.stdout
    assert (tmp_path / "runs" / "smoke" / "command.txt").read_text().startswith("rlnas search")

    sampled = rlnas("sample", "--run", "runs/smoke", "--top-k", "2", cwd=tmp_path)
    assert sampled.returncode == 0, sampled.stderr
    lines = [line for line in sampled.stdout.splitlines() if "p=" in line]
    assert len(lines) == 2 and all("@" in line for line in lines)


def test_cli_reports_bad_presets(tmp_path, digits_preset):
    data = to_dict(digits_preset)
    data["space"]["operators"] = ["conv3x3", "conv7x7"]
    preset = tmp_path / "bad.yaml"
    preset.write_text(yaml.safe_dump(data))
    done = rlnas("search", "--env", str(preset), "--evaluations", "2", cwd=tmp_path)
    assert done.returncode == 2
    assert "space.operators[1]" in done.stderr and "conv7x7" in done.stderr and "sep3x3" in done.stderr


def test_cli_lists_presets(tmp_path):
    done = rlnas("presets", cwd=tmp_path)
    assert done.returncode == 0 and "fashion_mnist" in done.stdout and "ppo" in done.stdout


def test_cli_latency_build_then_validate(tmp_path, capsys):
    from rlnas.cli import main

    table = tmp_path / "digits.json"
    assert main(["latency", "build", "--env", "digits", "--repeats", "3", "--rounds", "1", "--fit", "operators",
                 "--out", str(table)]) == 0  # fmt: skip
    assert table.is_file() and "rlnas latency validate" in capsys.readouterr().out
    assert json.loads(table.read_text())["overhead"]["fit"] == "operators"
    assert (
        main(["latency", "validate", "--table", str(table), "--samples", "6", "--plot", str(tmp_path / "p.png")]) == 0
    )
    out = capsys.readouterr().out
    assert "kendall_tau:" in out and "mape_pct:" in out and (tmp_path / "p.png").stat().st_size > 0


def test_cli_latency_validate_names_a_missing_table(tmp_path, capsys):
    from rlnas.cli import main

    assert main(["latency", "validate", "--table", str(tmp_path / "none.json")]) == 2
    assert "rlnas latency build" in capsys.readouterr().err
