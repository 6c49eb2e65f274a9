"""The reusable controller: an SB3 policy plus the search space it was trained for.

On disk (``runs/NAME/policy/``): ``policy.zip`` (``PPO.save``) and ``controller.json`` (space declaration,
fingerprint, observation layout, the environment preset it was trained on). Loading needs no environment
and no data set.
"""

from __future__ import annotations

import heapq
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from stable_baselines3 import PPO

from rlnas.config import ConfigError, EnvPreset, to_dict
from rlnas.envs.child_net import OBSERVATION_LAYOUT
from rlnas.space import Arch, SearchSpace

CONTROLLER_FORMAT_VERSION = 1
POLICY_FILE = "policy.zip"
META_FILE = "controller.json"


@dataclass(frozen=True)
class Proposal:
    """An architecture the controller proposes and its log-probability under the policy."""

    arch: Arch
    log_prob: float


class Controller:
    """Proposes architectures of :attr:`space` for a latency target."""

    def __init__(self, model: PPO, space: SearchSpace, reference_ms: float | None, meta: dict | None = None) -> None:
        self.model = model
        self.space = space
        self.reference_ms = reference_ms
        self.meta = meta or {}

    def probabilities(self, target_latency_ms: float | None = None) -> list[np.ndarray]:
        """The policy's probabilities for every action dimension (operator, keep-ratio, ... per layer)."""
        if target_latency_ms is None or self.reference_ms is None:
            if target_latency_ms is not None:
                raise ValueError("this controller was trained without a latency target; omit the target")
            ratio = 1.0
        else:
            ratio = target_latency_ms / self.reference_ms
        obs = np.array([ratio], dtype=np.float32)
        obs_tensor, _ = self.model.policy.obs_to_tensor(obs)
        with torch.no_grad():
            dist = self.model.policy.get_distribution(obs_tensor)
        return [d.probs[0].cpu().numpy().astype(np.float64) for d in dist.distribution]

    def propose(
        self, k: int = 1, target_latency_ms: float | None = None, deterministic: bool = True, seed: int | None = None
    ) -> list[Proposal]:
        """The ``k`` most likely architectures (``deterministic``), or ``k`` distinct samples from the policy."""
        probs = self.probabilities(target_latency_ms)
        logp = [np.log(np.clip(p, 1e-300, None)) for p in probs]
        actions = _k_most_likely(logp, k) if deterministic else _distinct_samples(probs, k, seed)
        return [
            Proposal(self.space.decode(a), float(sum(lp[i] for lp, i in zip(logp, a, strict=True)))) for a in actions
        ]

    def check_space(self, space: SearchSpace) -> None:
        """Raise if ``space`` is not the space this controller was trained for."""
        if space.fingerprint != self.space.fingerprint:
            raise ConfigError(
                f"this controller was trained for search space {self.space.fingerprint}, not {space.fingerprint}: "
                "use a policy trained on the same env preset (space, data set shape), or train a new one"
            )

    def save(self, directory: str | Path, preset: EnvPreset | None = None, extra: dict | None = None) -> Path:
        """Write ``policy.zip`` and ``controller.json`` into ``directory``; return it."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save(directory / POLICY_FILE)
        meta = {
            "format_version": CONTROLLER_FORMAT_VERSION,
            "space": self.space.declaration(),
            "fingerprint": self.space.fingerprint,
            "observation": {"layout": list(OBSERVATION_LAYOUT), "reference_ms": self.reference_ms},
            "env_preset": to_dict(preset) if preset is not None else self.meta.get("env_preset"),
            **(extra or {}),
        }
        (directory / META_FILE).write_text(json.dumps(meta, indent=2))
        self.meta = meta
        return directory


def load_controller(path: str | Path, space: SearchSpace | None = None) -> Controller:
    """Load a controller from a run folder, its ``policy/`` folder or ``policy.zip``.

    With ``space``, refuse a controller trained for another search space.
    """
    path = Path(path)
    candidates = [path / "policy", path] if path.is_dir() else [path.parent]
    folder = next((c for c in candidates if (c / META_FILE).is_file() and (c / POLICY_FILE).is_file()), None)
    if folder is None:
        raise FileNotFoundError(
            f"no controller at {path}: expected {POLICY_FILE} and {META_FILE} in it or in its policy/ folder "
            "(written by `rlnas search`)"
        )
    meta = json.loads((folder / META_FILE).read_text())
    if meta.get("format_version") != CONTROLLER_FORMAT_VERSION:
        raise ConfigError(f"{folder / META_FILE}: controller format {meta.get('format_version')!r} is not supported")
    stored_space = SearchSpace.from_declaration(meta["space"])
    if stored_space.fingerprint != meta["fingerprint"]:
        raise ConfigError(f"{folder / META_FILE}: the stored space does not match its fingerprint (edited by hand?)")
    try:
        model = PPO.load(folder / POLICY_FILE, device="cpu")
    except Exception as err:  # SB3 raises several kinds for a damaged zip
        raise ConfigError(f"{folder / POLICY_FILE} could not be loaded ({type(err).__name__}: {err})") from err
    controller = Controller(model, stored_space, meta["observation"]["reference_ms"], meta)
    if space is not None:
        controller.check_space(space)
    return controller


def _k_most_likely(logp: list[np.ndarray], k: int) -> list[list[int]]:
    """Exact top-``k`` joint actions of independent categoricals (best-first over a successor tree)."""
    order = [np.argsort(-lp, kind="stable") for lp in logp]
    sorted_lp = [lp[o] for lp, o in zip(logp, order, strict=True)]

    def score(ranks: tuple[int, ...]) -> float:
        return float(sum(s[r] for s, r in zip(sorted_lp, ranks, strict=True)))

    start = (0,) * len(logp)
    heap, found = [(-score(start), start, 0)], []
    while heap and len(found) < k:
        _, ranks, last = heapq.heappop(heap)
        found.append([int(o[r]) for o, r in zip(order, ranks, strict=True)])
        for j in range(last, len(ranks)):  # each rank vector has exactly one parent: no duplicates
            if ranks[j] + 1 < len(order[j]):
                child = (*ranks[:j], ranks[j] + 1, *ranks[j + 1 :])
                heapq.heappush(heap, (-score(child), child, j))
    return found


def _distinct_samples(probs: list[np.ndarray], k: int, seed: int | None) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    seen: dict[tuple[int, ...], None] = {}
    for _ in range(1000 * k):
        seen.setdefault(tuple(int(rng.choice(len(p), p=p / p.sum())) for p in probs))
        if len(seen) == k:
            break
    return [list(a) for a in seen]
