"""The reusable controller: a policy plus the search space it was trained for.

On disk (``runs/NAME/policy/``): ``policy.safetensors`` (the policy's tensors) and ``controller.json`` (space
declaration, fingerprint, observation layout, action-space factorisation, the policy's shape, the environment
preset it was trained on), read as data only (:mod:`rlnas.agents.policy_files`); a search also writes SB3's
``policy.zip`` beside them for ``PPO.load`` users. Loading needs no environment and no data set.

A ``joint`` policy gives independent per-dimension probabilities: the top-k is exact over their product. A
``sequential`` policy (:mod:`rlnas.agents.sequential`) decides one dimension after another: the top-k is a
best-first search over the prefix tree (exact; a prefix's log-probability bounds all its completions).
"""

from __future__ import annotations

import functools
import heapq
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.policies import ActorCriticPolicy

from rlnas.agents.policy_files import (
    CONTROLLER_FORMAT_VERSION,
    META_FILE,
    SB3_FILE,
    WEIGHTS_FILE,
    load_policy,
    save_policy,
)
from rlnas.agents.sequential import SequentialLayout
from rlnas.config import ConfigError, EnvPreset, to_dict
from rlnas.envs.child_net import OBSERVATION_LAYOUT, target_observation
from rlnas.presets import resolve_trained, trained_controllers
from rlnas.space import Arch, KeepPlan, Space, space_from_declaration

MAX_EXPANSIONS = 20_000
"""Prefixes the sequential top-k search may expand before it continues as a beam search of width k."""


@dataclass(frozen=True)
class Proposal:
    """An architecture the controller proposes and its log-probability under the policy."""

    arch: Arch | KeepPlan
    log_prob: float


class Controller:
    """Proposes architectures of :attr:`space` for a latency target.

    ``model``: the PPO model that trained ``policy`` (a search's controller has it; a loaded one does not).
    """

    def __init__(
        self,
        policy: ActorCriticPolicy,
        space: Space,
        reference_ms: float | None,
        meta: dict | None = None,
        factorisation: str = "joint",
        model: PPO | None = None,
    ) -> None:
        if factorisation not in ("joint", "sequential"):
            raise ConfigError(f"factorisation: {factorisation!r} is not allowed; choose one of joint, sequential")
        self.policy = policy
        self.model = model
        self.space = space
        self.reference_ms = reference_ms
        self.meta = meta or {}
        self.factorisation = factorisation
        self.layout = SequentialLayout(space.nvec) if factorisation == "sequential" else None

    def probabilities(self, target_latency_ms: float | None = None) -> list[np.ndarray]:
        """The joint policy's probabilities for every action dimension (operator, keep-ratio, ... per layer)."""
        if self.layout is not None:
            raise ValueError("a sequential controller has no per-dimension marginals: use propose()")
        return self._action_probs(self._base_obs(target_latency_ms)[None])[0]

    def propose(
        self, k: int = 1, target_latency_ms: float | None = None, deterministic: bool = True, seed: int | None = None
    ) -> list[Proposal]:
        """The ``k`` most likely architectures (``deterministic``), or ``k`` distinct samples from the policy."""
        base = self._base_obs(target_latency_ms)
        if self.layout is not None:
            step = functools.partial(self._next_choice_logp, base=base)
            if deterministic:
                found = _sequential_top_k(step, self.layout.steps, k)
            else:
                found = _sequential_samples(step, self.layout.steps, k, seed)
            return [Proposal(self.space.decode(self.layout.full_action(d)), lp) for d, lp in found]
        probs = self.probabilities(target_latency_ms)
        logp = [np.log(np.clip(p, 1e-300, None)) for p in probs]
        actions = _k_most_likely(logp, k) if deterministic else _distinct_samples(probs, k, seed)
        return [
            Proposal(self.space.decode(a), float(sum(lp[i] for lp, i in zip(logp, a, strict=True)))) for a in actions
        ]

    def _base_obs(self, target_latency_ms: float | None) -> np.ndarray:
        if target_latency_ms is not None and self.reference_ms is None:
            raise ValueError("this controller was trained without a latency target; omit the target")
        return target_observation(target_latency_ms, self.reference_ms)

    def _action_probs(self, obs: np.ndarray) -> list[list[np.ndarray]]:
        """For each observation row, the policy's probabilities per action dimension."""
        obs_tensor, _ = self.policy.obs_to_tensor(obs)
        with torch.no_grad():
            dist = self.policy.get_distribution(obs_tensor)
        parts = dist.distribution if isinstance(dist.distribution, list) else [dist.distribution]
        probs = [d.probs.cpu().numpy().astype(np.float64) for d in parts]
        return [[p[row] for p in probs] for row in range(len(obs))]

    def _next_choice_logp(self, prefixes: list[list[int]], base: np.ndarray) -> list[np.ndarray]:
        """Log-probabilities of the next decision's choices after each prefix (one batched forward pass)."""
        obs = np.stack([self.layout.observation(p, base) for p in prefixes])
        rows = self._action_probs(obs)
        folded = [self.layout.fold(len(p), row[0]) for p, row in zip(prefixes, rows, strict=True)]
        return [np.log(np.clip(f, 1e-300, None)) for f in folded]

    def check_space(self, space: Space) -> None:
        """Raise if ``space`` is not the space this controller was trained for."""
        if space.fingerprint != self.space.fingerprint:
            raise ConfigError(
                f"this controller was trained for search space {self.space.fingerprint}, not {space.fingerprint}: "
                "use a policy trained on the same env preset (space, data set shape), or train a new one"
            )

    def save(self, directory: str | Path, preset: EnvPreset | None = None, extra: dict | None = None) -> Path:
        """Write ``policy.safetensors`` and ``controller.json`` (and, with a model, SB3's ``policy.zip``) into
        ``directory``; return it."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if self.model is not None:
            self.model.save(directory / SB3_FILE)
        meta = {
            "format_version": CONTROLLER_FORMAT_VERSION,
            "space": self.space.declaration(),
            "fingerprint": self.space.fingerprint,
            "observation": {"layout": list(OBSERVATION_LAYOUT), "reference_ms": self.reference_ms},
            "factorisation": self.factorisation,
            "policy": save_policy(self.policy, directory),
            "env_preset": to_dict(preset) if preset is not None else self.meta.get("env_preset"),
            **(extra or {}),
        }
        (directory / META_FILE).write_text(json.dumps(meta, indent=2))
        self.meta = meta
        return directory


def load_controller(path: str | Path, space: Space | None = None) -> Controller:
    """Load a controller from a run folder, its ``policy/`` folder, a file in it, or the bare name of a shipped
    one (``agents/trained/<name>``, e.g. ``nas_bench_macro__ppo``). Reads data only: no file is unpickled.

    With ``space``, refuse a controller trained for another search space.
    """
    path = resolve_trained(path)
    candidates = [path / "policy", path] if path.is_dir() else [path.parent]
    folder = next((c for c in candidates if (c / META_FILE).is_file()), None)
    if folder is None:
        raise FileNotFoundError(
            f"no controller at {path}: expected {META_FILE} and {WEIGHTS_FILE} in it or in its policy/ folder "
            f"(written by `rlnas search`), or the name of a shipped one ({', '.join(trained_controllers())})"
        )
    meta = _read_meta(folder / META_FILE)
    try:
        stored_space = space_from_declaration(meta["space"])
        fingerprint, reference_ms = meta["fingerprint"], meta["observation"]["reference_ms"]
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(
            f"{folder / META_FILE} is not a controller description ({type(err).__name__}: {err})"
        ) from err
    if stored_space.fingerprint != fingerprint:
        raise ConfigError(f"{folder / META_FILE}: the stored space does not match its fingerprint (edited by hand?)")
    factorisation = meta.get("factorisation", "joint")  # controllers saved before the key existed are joint
    policy = load_policy(folder, meta.get("policy"), stored_space, factorisation)
    controller = Controller(policy, stored_space, reference_ms, meta, factorisation)
    if space is not None:
        controller.check_space(space)
    return controller


def _read_meta(file: Path) -> dict:
    try:
        meta = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"{file} could not be read as JSON ({type(err).__name__}: {err})") from err
    version = meta.get("format_version") if isinstance(meta, dict) else None
    if version == 1:
        raise ConfigError(
            f"{file.parent} was written by an older rlnas, as {SB3_FILE} only, which loads by unpickling (it can "
            "run code): if you trust its source, convert it once with "
            f"`python -m rlnas.agents.policy_files {file.parent}`"
        )
    if version != CONTROLLER_FORMAT_VERSION:
        raise ConfigError(
            f"{file}: controller format {version!r} is not supported (expected {CONTROLLER_FORMAT_VERSION})"
        )
    return meta


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


NextLogp = Callable[[list[list[int]]], list[np.ndarray]]
"""Given prefixes (choices so far), the log-probabilities of the next choice after each."""


def _sequential_top_k(next_logp: NextLogp, steps: int, k: int) -> list[tuple[list[int], float]]:
    """The ``k`` most likely complete decision lists of an autoregressive policy, best first.

    Best-first search: log-probabilities only fall as a prefix grows, so the first ``k`` complete lists popped
    are the exact top-k. After :data:`MAX_EXPANSIONS` expansions (a nearly uniform policy over a large space) it
    continues as a beam search of width ``k`` from the best open prefixes.
    """
    heap: list[tuple[float, int, list[int]]] = [(0.0, 0, [])]
    found: list[tuple[list[int], float]] = []
    counter, expansions = 1, 0
    while heap and len(found) < k:
        if expansions >= MAX_EXPANSIONS:
            return found + _beam_search(next_logp, steps, k - len(found), heapq.nsmallest(k, heap))
        neg, _, prefix = heapq.heappop(heap)
        if len(prefix) == steps:
            found.append((prefix, -neg))
            continue
        expansions += 1
        for choice, lp in enumerate(next_logp([prefix])[0]):
            heapq.heappush(heap, (neg - float(lp), counter, [*prefix, choice]))
            counter += 1
    return found


def _beam_search(
    next_logp: NextLogp, steps: int, k: int, start: list[tuple[float, int, list[int]]]
) -> list[tuple[list[int], float]]:
    beam = [(prefix, -neg) for neg, _, prefix in start]
    while any(len(p) < steps for p, _ in beam):
        done = [(p, s) for p, s in beam if len(p) == steps]
        open_ = [(p, s) for p, s in beam if len(p) < steps]
        grown = [
            ([*p, c], s + float(lp))
            for (p, s), logp in zip(open_, next_logp([p for p, _ in open_]), strict=True)
            for c, lp in enumerate(logp)
        ]
        beam = sorted(done + grown, key=lambda item: -item[1])[:k]
    return beam


def _sequential_samples(next_logp: NextLogp, steps: int, k: int, seed: int | None) -> list[tuple[list[int], float]]:
    """Up to ``k`` distinct complete decision lists drawn from the policy (ancestral sampling)."""
    rng = np.random.default_rng(seed)
    seen: dict[tuple[int, ...], float] = {}
    for _ in range(1000 * k):
        prefix, score = [], 0.0
        for _ in range(steps):
            logp = next_logp([prefix])[0]
            p = np.exp(logp)
            choice = int(rng.choice(len(p), p=p / p.sum()))
            prefix.append(choice)
            score += float(logp[choice])
        seen.setdefault(tuple(prefix), score)
        if len(seen) == k:
            break
    return [(list(d), s) for d, s in seen.items()]
