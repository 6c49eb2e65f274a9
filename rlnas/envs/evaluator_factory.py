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
from rlnas.training.data import DataSplits, load_data
from rlnas.training.supernet import Supernet, load_supernet


def make_evaluator(
    preset: EnvPreset,
    device: str = "cpu",
    supernet: str | Path | Supernet | None = None,
    data: DataSplits | None = None,
) -> Evaluator:
    """The evaluator the preset asks for (``scratch`` trains children; ``tabular`` looks them up; a preset with a
    ``model`` section prunes that model, trained once here).

    ``supernet`` evaluates children of that supernet (a loaded one, or the file it was saved to, its space checked),
    or, without one, of one trained first in memory (``rlnas search`` trains it into the run folder instead).
    ``data``: the preset's data set, already loaded (a cluster worker gets it from the driver).
    """
    if preset.model is not None:
        from rlnas.envs.prune_evaluator import PruneEvaluator  # imports Torch-Pruning only when needed

        return PruneEvaluator(preset, device)
    if preset.evaluator == "tabular":
        return TabularEvaluator(preset)
    if preset.evaluator == "supernet":
        data = data if data is not None else load_data(preset.data)
        if isinstance(supernet, Supernet):
            net = supernet
        elif supernet is not None:
            net, _ = load_supernet(supernet, space_for(preset), device)
        else:
            net = train_preset_supernet(preset, data, device=device)
        return SupernetEvaluator(preset, net, device, data)
    return ScratchEvaluator(preset, device, data)
