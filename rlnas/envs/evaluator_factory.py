"""The evaluator a preset asks for.

The factory sits above the evaluators it chooses between (scratch in :mod:`rlnas.envs.evaluators`,
:mod:`rlnas.envs.supernet_evaluator`, :mod:`rlnas.envs.tabular`, :mod:`rlnas.envs.prune_evaluator`), so they need
not import each other.
"""

from __future__ import annotations

from pathlib import Path

from rlnas.config import EnvPreset
from rlnas.envs.evaluators import Evaluator, ScratchEvaluator, space_for
from rlnas.envs.supernet_evaluator import SupernetEvaluator, train_preset_supernet
from rlnas.envs.tabular import TabularEvaluator
from rlnas.training.data import load_data
from rlnas.training.supernet import load_supernet


def make_evaluator(preset: EnvPreset, device: str = "cpu", supernet: str | Path | None = None) -> Evaluator:
    """The evaluator the preset asks for (``scratch`` trains children; ``tabular`` looks them up; a preset with a
    ``model`` section prunes that model, trained once here).

    ``supernet`` evaluates children of the supernet saved at ``supernet`` (its space checked), or, without a
    file, of one trained first in memory (``rlnas search`` trains it into the run folder instead).
    """
    if preset.model is not None:
        from rlnas.envs.prune_evaluator import PruneEvaluator  # imports Torch-Pruning only when needed

        return PruneEvaluator(preset, device)
    if preset.evaluator == "tabular":
        return TabularEvaluator(preset)
    if preset.evaluator == "supernet":
        data = load_data(preset.data)
        if supernet is not None:
            net, _ = load_supernet(supernet, space_for(preset), device)
        else:
            net = train_preset_supernet(preset, data, device=device)
        return SupernetEvaluator(preset, net, device, data)
    return ScratchEvaluator(preset, device)
