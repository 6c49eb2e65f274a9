"""Propose architectures with a trained controller, and optionally evaluate them."""

from __future__ import annotations

import math
from pathlib import Path

from rlnas.agents.controller import load_controller
from rlnas.config import load_env_preset
from rlnas.envs.child_net import checked_ratio
from rlnas.envs.evaluator_factory import make_evaluator
from rlnas.envs.reward import reward_for
from rlnas.envs.supernet_evaluator import SUPERNET_FILE


def sample_architectures(
    path: str | Path,
    *,
    top_k: int = 5,
    target_latency_ms: float | None = None,
    stochastic: bool = False,
    seed: int = 0,
    evaluate: bool = False,
    device: str = "cpu",
) -> list[dict]:
    """The controller's ``top_k`` architectures (most likely, or sampled) with their probabilities.

    With ``evaluate``, each is trained, pruned and measured on the env preset the controller was trained on.
    """
    if top_k < 1:
        raise ValueError(f"--top-k must be at least 1, got {top_k}")
    controller = load_controller(path)
    if target_latency_ms is not None and controller.reference_ms is not None:
        checked_ratio(target_latency_ms, controller.reference_ms)
    proposals = controller.propose(top_k, target_latency_ms, deterministic=not stochastic, seed=seed)
    rows = [{"arch": str(p.arch), "probability": math.exp(p.log_prob)} for p in proposals]
    if evaluate:
        preset = load_env_preset(controller.meta["env_preset"])
        run_supernet = Path(path) / SUPERNET_FILE  # a run folder's own supernet, rather than training another
        evaluator = make_evaluator(preset, device, run_supernet if run_supernet.is_file() else None)
        controller.check_space(evaluator.space)
        for row, proposal in zip(rows, proposals, strict=True):
            terms, result = reward_for(preset.reward, evaluator.evaluate(proposal.arch), target_latency_ms)
            row.update(result.as_dict(), reward=terms.reward)
    return rows
