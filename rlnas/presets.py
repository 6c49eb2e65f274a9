"""Find presets by path or by bare name (``fashion_mnist`` -> ``envs/fashion_mnist.yaml``).

Names resolve against the source checkout's top-level ``envs/`` and ``agents/`` folders, or, after a
plain ``pip install``, against the copies the wheel maps into ``rlnas/_presets/`` (see pyproject.toml).
"""

from __future__ import annotations

from pathlib import Path

from rlnas.errors import ConfigError

_PACKAGE = Path(__file__).resolve().parent


def preset_dirs(kind: str) -> list[Path]:
    """Folders searched for presets of ``kind`` ("envs" or "agents"), in order."""
    candidates = [_PACKAGE / "_presets" / kind, _PACKAGE.parent / kind]
    return [d for d in candidates if d.is_dir()]


def available_presets(kind: str) -> list[str]:
    """Bare names of the presets of ``kind`` that ship with rlnas."""
    return sorted({p.stem for d in preset_dirs(kind) for p in d.glob("*.yaml")})


def resolve_preset(source: str | Path, kind: str) -> Path:
    """Return the preset file for a path or a bare name; raise with the available names otherwise."""
    path = Path(source).expanduser()
    if path.is_file():
        return path
    if path.suffix == "" and path.parent == Path("."):
        for folder in preset_dirs(kind):
            candidate = folder / f"{path.name}.yaml"
            if candidate.is_file():
                return candidate
    names = ", ".join(available_presets(kind)) or "(none found)"
    raise ConfigError(f"no {kind} preset {str(source)!r}: give a YAML path or one of: {names}")


def trained_controllers() -> list[str]:
    """Names of the trained controllers that ship with rlnas (folders under ``agents/trained/``)."""
    return sorted({p.name for d in preset_dirs("agents") for p in (d / "trained").glob("*") if p.is_dir()})


def resolve_trained(source: str | Path) -> Path:
    """``source`` itself if it exists, else the shipped controller of that bare name (else ``source`` unchanged)."""
    path = Path(source).expanduser()
    if path.exists() or path.parent != Path("."):
        return path
    return next(
        (d / "trained" / path.name for d in preset_dirs("agents") if (d / "trained" / path.name).is_dir()), path
    )
