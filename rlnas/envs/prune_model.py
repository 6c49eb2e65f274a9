"""``PruneModelEnv``: one step prunes an existing trained model to a keep-ratio per group and measures it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from rlnas.config import EnvPreset, load_env_preset
from rlnas.envs.child_net import ChildNetEnv
from rlnas.envs.evaluators import Evaluator

ENV_ID = "rlnas/PruneModel-v0"


class PruneModelEnv(ChildNetEnv):
    """Prune the preset's trained model (``model:`` section) group by group; the reward mixes accuracy and cost.

    The groups are Torch-Pruning's dependency groups of the model (layers whose channels must be removed
    together: residual additions, depthwise convolutions, concatenations), the classifier and
    ``model.ignored_layers`` excluded (:class:`~rlnas.pruning.foreign.Pruner`).

    ## Action Space
    ``MultiDiscrete([len(model.keep_ratios)] * groups)``: for every prunable group, a 0-based index into the
    preset's ``model.keep_ratios``. The group keeps that fraction of its channels (rounded to ``model.round_to``),
    the most important by ``model.importance`` (L1 norm by default).

    ## Observation Space
    ``Box(0, 100, (1,), float32)``: the latency target divided by the preset's ``reward.target_ms``, as in
    ``rlnas/ChildNet-v0`` (``reset(options={"target_latency_ms": x})`` changes it); always 1 without a latency
    target (``reward.cost: flops``, ``reward.kind: accuracy`` or ``amc``).

    ## Rewards
    Any reward kind of :mod:`rlnas.envs.reward` (default ``budget``: the validation accuracy within the FLOPs or
    latency target, less ``reward.penalty`` times the relative overshoot beyond it) of the pruned model after
    BatchNorm recalibration (``train.recalibration_batches``) and ``train.finetune_steps`` of fine-tuning at
    ``train.finetune_lr``; ``reward.failure_reward`` when fine-tuning diverged (``info["reason"]``).

    ## Episode End
    Every episode is one step: ``terminated`` is True. With ``max_evaluations``, a step that would evaluate a new
    plan beyond that budget evaluates nothing: ``truncated`` is True, the reward 0, ``info["budget_exhausted"]``.

    ## Evaluation cache
    As ``rlnas/ChildNet-v0``: every evaluation is stored under its cache key (the model's name, its weights'
    digest and groups, the plan, the evaluation settings); a plan already in the store is not evaluated again
    (``info["cached"]``). Keep-ratios that round to the same channel count in a group are one choice:
    ``info["action"]`` holds the smallest such index.

    ## Arguments
    ``preset``: an :class:`~rlnas.config.EnvPreset` with a ``model`` section, a preset name
    (``"prune_resnet18_fashion"``) or YAML path. Keyword arguments as ``rlnas/ChildNet-v0``: ``device`` (where the
    model is fine-tuned), ``store_path``, ``target_latency_ms``, ``max_evaluations``, and ``evaluator`` (e.g. a
    :class:`~rlnas.envs.prune_evaluator.PruneEvaluator` given an already trained ``model``).

    ## Version History
    * v0: first version.
    """

    env_id: ClassVar[str] = ENV_ID

    def __init__(self, preset: EnvPreset | str | Path, **kwargs: Any) -> None:
        preset = preset if isinstance(preset, EnvPreset) else load_env_preset(preset)
        if preset.model is None:
            raise ValueError(f"env preset {preset.name!r} has no model section; use rlnas/ChildNet-v0 for it")
        super().__init__(preset, **kwargs)
        check_flops_target(self.preset, self.evaluator)


def check_flops_target(preset: EnvPreset, evaluator: Evaluator) -> None:
    """Raise ValueError when the FLOPs target is below what the smallest plan reaches (no plan could meet it)."""
    reward, smallest = preset.reward, getattr(evaluator, "smallest_flops", None)
    if reward.cost != "flops" or reward.kind in ("accuracy", "amc") or smallest is None:
        return
    floor = smallest() / 1e6
    if reward.target_mflops < floor:
        raise ValueError(
            f"reward.target_mflops {reward.target_mflops:g} is below the {floor:.4g} MFLOPs of the smallest plan "
            f"(every group at keep {min(preset.model.keep_ratios):g}); raise the target or add a smaller keep-ratio"
        )
