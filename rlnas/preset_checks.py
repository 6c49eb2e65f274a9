"""Validation of loaded presets: every error names the key, what was found and what is allowed."""

from __future__ import annotations

import reprlib
from typing import Any

from rlnas.errors import ConfigError
from rlnas.model_config import validate_model
from rlnas.preset_types import (
    MAX_IMAGE_SIZE,
    MAX_LAYERS,
    MAX_WIDTH,
    AgentPreset,
    EnvPreset,
    EvolutionPreset,
    PPOPreset,
    RewardConfig,
    SpaceConfig,
    SupernetConfig,
)
from rlnas.reward_function import import_reward_function


def shown(value: Any) -> str:
    """``repr(value)``, shortened for messages (a value may be long, deeply nested or self-referencing)."""
    return _REPR.repr(value)


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 80
_REPR.maxlevel = 3


def check(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {shown(value)} is not allowed; expected {allowed}")


def validate_env(p: EnvPreset) -> None:
    if p.model is not None:
        check(p.space is None, "space", "...", "no space section with a model section (the model's groups are pruned)")
        validate_model(p.model, p.latency.source)
        allowed = "scratch (the default) with a model section: every plan is pruned from the trained model"
        check(p.evaluator == "scratch", "evaluator", p.evaluator, allowed)
    else:
        if p.space is None:
            raise ConfigError("missing required key space (or give a model section: a model to prune)")
        _validate_space(p.space)
    _validate_rest(p)


def _validate_space(s: SpaceConfig) -> None:
    from rlnas.space.ops import OPERATORS

    channels = f"a positive number of channels, at most {MAX_WIDTH}"
    check(0 < s.stem_width <= MAX_WIDTH, "space.stem_width", s.stem_width, channels)
    check(s.stem_stride in (1, 2), "space.stem_stride", s.stem_stride, "1 or 2")
    check(len(s.stages) > 0, "space.stages", [], "at least one stage")
    for i, st in enumerate(s.stages):
        layers = f"a positive number of layers, at most {MAX_LAYERS}"
        check(0 < st.layers <= MAX_LAYERS, f"space.stages[{i}].layers", st.layers, layers)
        check(0 < st.width <= MAX_WIDTH, f"space.stages[{i}].width", st.width, channels)
        check(st.stride in (1, 2), f"space.stages[{i}].stride", st.stride, "1 or 2")
    check(len(s.operators) > 0, "space.operators", [], f"a non-empty list from: {', '.join(OPERATORS)}")
    for i, op in enumerate(s.operators):
        check(op in OPERATORS, f"space.operators[{i}]", op, f"one of: {', '.join(OPERATORS)}")
    check(len(set(s.operators)) == len(s.operators), "space.operators", list(s.operators), "no duplicates")
    check(len(s.keep_ratios) > 0, "space.keep_ratios", [], "a non-empty list of ratios in (0, 1]")
    for i, k in enumerate(s.keep_ratios):
        check(0 < k <= 1, f"space.keep_ratios[{i}]", k, "a ratio in (0, 1], e.g. 0.25, 0.5, 1.0")
    check(len(set(s.keep_ratios)) == len(s.keep_ratios), "space.keep_ratios", list(s.keep_ratios), "no duplicates")


def _validate_rest(p: EnvPreset) -> None:
    t = p.train
    check(t.steps >= 0, "train.steps", t.steps, "a non-negative number of optimizer steps")
    check(t.finetune_steps >= 0, "train.finetune_steps", t.finetune_steps, "a non-negative number of steps")
    check(t.batch_size > 0, "train.batch_size", t.batch_size, "a positive integer")
    check(t.lr > 0, "train.lr", t.lr, "a positive learning rate")
    check(t.finetune_lr > 0, "train.finetune_lr", t.finetune_lr, "a positive learning rate")
    check(t.threads is None or t.threads > 0, "train.threads", t.threads, "a positive number of threads or null")
    d = p.data
    check(d.val_size > 0, "data.val_size", d.val_size, "a positive number of examples")
    check(d.train_subset is None or d.train_subset > 0, "data.train_subset", d.train_subset, "positive or null")
    side = f"a positive side of at most {MAX_IMAGE_SIZE} pixels, or null"
    check(d.image_size is None or 0 < d.image_size <= MAX_IMAGE_SIZE, "data.image_size", d.image_size, side)
    _validate_reward(p.reward)
    _validate_table(p)
    _validate_supernet(p.supernet)
    lat = p.latency
    check(lat.repeats > 0, "latency.repeats", lat.repeats, "a positive integer")
    check(lat.warmup >= 0, "latency.warmup", lat.warmup, "a non-negative integer")
    check(lat.threads > 0, "latency.threads", lat.threads, "a positive integer")
    check(lat.batch_size > 0, "latency.batch_size", lat.batch_size, "a positive integer")
    check(lat.device.split(":")[0] in ("cpu", "cuda"), "latency.device", lat.device, "cpu or cuda")
    check(
        lat.device.startswith("cpu") or lat.source == "table" or _cuda_available(), "latency.device", lat.device,
        "cpu on this machine (torch sees no CUDA device), or latency.source: table with a table built on that device",
    )  # fmt: skip


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _validate_reward(r: RewardConfig) -> None:
    needed = r.kind not in ("accuracy", "amc")
    for key, value, cost, unit in (
        ("target_ms", r.target_ms, "latency", "ms"),
        ("target_mflops", r.target_mflops, "flops", "MFLOPs"),
    ):
        if value is None and needed and r.cost == cost:
            raise ConfigError(
                f"missing required key reward.{key}: reward.kind {r.kind} with reward.cost {cost} needs a target "
                f"in {unit} (or use reward.kind: accuracy)"
            )
        check(value is None or value > 0, f"reward.{key}", value, f"a positive target in {unit}")
    check(r.penalty > 0, "reward.penalty", r.penalty, "a positive penalty per unit of relative overshoot")
    check(r.multiplier_lr > 0, "reward.multiplier_lr", r.multiplier_lr, "a positive step size of the multiplier")
    check(0 < r.over_share < 1, "reward.over_share", r.over_share, "a share of children over the budget in (0, 1)")
    check(r.slack >= 0, "reward.slack", r.slack, "a non-negative weight per unit of the target left unused")
    check(r.kind != "custom" or bool(r.function), "reward.function", r.function, "'module:function' for kind custom")
    if r.kind == "custom":  # a function named for another kind is not imported: importing runs its module's code
        try:
            import_reward_function(r.function)
        except Exception as err:  # importing runs the module's code, which may fail in any way
            problem = " ".join(f"{type(err).__name__}: {err}".split())
            raise ConfigError(f"reward.function: {r.function!r} cannot be imported ({problem})") from None


def _validate_table(p: EnvPreset) -> None:
    if p.evaluator != "tabular":
        check(p.table is None, "table", "...", "no table section unless evaluator is tabular")
        return
    check(p.table is not None, "table", None, "a table section (path, codes, metric names) for evaluator tabular")
    t, ops = p.table, p.space.operators
    if t.codes is not None:
        check(len(t.codes) == len(ops), "table.codes", list(t.codes), f"one code per operator ({len(ops)})")
        check(len(set(t.codes)) == len(t.codes), "table.codes", list(t.codes), "distinct codes")
    keeps = p.space.keep_ratios
    if t.keep_codes is None:
        one_keep = "a code per keep-ratio (keys without one need space.keep_ratios: [1.0])"
        check(len(keeps) == 1, "table.keep_codes", None, one_keep)
    else:
        n = len(keeps)
        check(len(t.keep_codes) == n, "table.keep_codes", list(t.keep_codes), f"one code per keep-ratio ({n})")
        check(len(set(t.keep_codes)) == n, "table.keep_codes", list(t.keep_codes), "distinct codes")
    check(t.accuracy_scale > 0, "table.accuracy_scale", t.accuracy_scale, "a positive number (100 for percent)")
    check(t.flops is not None or p.reward.cost != "flops", "table.flops", None, "a FLOPs column for reward.cost: flops")


def _validate_supernet(s: SupernetConfig) -> None:
    check(s.steps > 0, "supernet.steps", s.steps, "a positive number of training steps")
    check(s.batch_size > 0, "supernet.batch_size", s.batch_size, "a positive integer")
    check(s.lr > 0, "supernet.lr", s.lr, "a positive learning rate")
    check(s.weight_decay >= 0, "supernet.weight_decay", s.weight_decay, "a non-negative number")
    check(
        not s.distill or s.sampling == "sandwich",
        "supernet.distill", s.distill,
        "false with supernet.sampling uniform (set supernet.distill=false: the sandwich's widest path is the teacher)",
    )  # fmt: skip
    check(
        0 <= s.widest_warmup < 1, "supernet.widest_warmup", s.widest_warmup,
        "a fraction of supernet.steps in [0, 1) (the rest trains narrower paths)",
    )  # fmt: skip
    check(s.resort_every > 0, "supernet.resort_every", s.resort_every, "a positive number of steps")
    check(s.recalibration_batches >= 0, "supernet.recalibration_batches", s.recalibration_batches, "0 or more")
    check(
        s.recalibration_batch_size is None or s.recalibration_batch_size > 0,
        "supernet.recalibration_batch_size", s.recalibration_batch_size, "a positive integer or null (batch_size)",
    )  # fmt: skip
    check(s.finetune_steps >= 0, "supernet.finetune_steps", s.finetune_steps, "a non-negative number of steps")
    check(s.finetune_lr > 0, "supernet.finetune_lr", s.finetune_lr, "a positive learning rate")
    check(s.val_size is None or s.val_size > 0, "supernet.val_size", s.val_size, "a positive number or null (all)")


def validate_agent(p: AgentPreset) -> None:
    if isinstance(p, EvolutionPreset):
        check(p.population_size >= 2, "population_size", p.population_size, "at least 2")
        check(1 <= p.sample_size <= p.population_size, "sample_size", p.sample_size, "1 .. population_size")
    if not isinstance(p, PPOPreset):
        return
    check(p.n_steps >= 1, "n_steps", p.n_steps, "a positive integer")
    check(p.batch_size >= 1, "batch_size", p.batch_size, "a positive integer")
    check(p.n_epochs >= 1, "n_epochs", p.n_epochs, "a positive integer")
    check(p.learning_rate > 0, "learning_rate", p.learning_rate, "a positive number")
    check(0 < p.gamma <= 1, "gamma", p.gamma, "a discount in (0, 1]")
    check(0 <= p.gae_lambda <= 1, "gae_lambda", p.gae_lambda, "a value in [0, 1]")
    check(p.clip_range > 0, "clip_range", p.clip_range, "a positive number, e.g. 0.2")
    check(p.ent_coef >= 0, "ent_coef", p.ent_coef, "a non-negative number")
    check(p.vf_coef >= 0, "vf_coef", p.vf_coef, "a non-negative number")
    check(p.max_grad_norm > 0, "max_grad_norm", p.max_grad_norm, "a positive number")
    check(all(w > 0 for w in p.net_arch), "net_arch", list(p.net_arch), "positive layer sizes")
    check(p.rank_window is None or p.rank_window >= 1, "rank_window", p.rank_window, "a positive number or null")
    half_life = p.ent_half_life
    check(half_life is None or half_life > 0, "ent_half_life", half_life, "a positive number of children or null")
    check(p.virtual_rollouts >= 0, "virtual_rollouts", p.virtual_rollouts, "0 (off) or a positive integer")
    check(
        p.virtual_rollouts == 0 or p.factorisation == "joint",
        "virtual_rollouts",
        p.virtual_rollouts,
        "0 with factorisation: sequential (virtual rollouts need one-step episodes: use factorisation: joint)",
    )
    check(
        p.repeated_children != "redraw" or p.factorisation == "joint",
        "repeated_children",
        p.repeated_children,
        "neutral or reward with factorisation: sequential (redraw re-samples whole children: use factorisation: joint)",
    )
    check(p.surrogate_min_r2 <= 1, "surrogate_min_r2", p.surrogate_min_r2, "an R^2 of at most 1")
    check(p.surrogate_exploration >= 0, "surrogate_exploration", p.surrogate_exploration, "a non-negative number")
    check(p.surrogate_min_children >= 3, "surrogate_min_children", p.surrogate_min_children, "at least 3")
    stall = p.stall_children
    check(stall is None or stall >= 1, "stall_children", stall, "a positive number of children or null (off)")
    check(0 < p.stall_temper < 1, "stall_temper", p.stall_temper, "a factor in (0, 1), e.g. 0.5")
