"""The preset dataclasses: an env preset (data, space, training, latency, reward, table, supernet, model) and the
agent presets (PPO and the baselines). Their defaults are the shipped settings; :mod:`rlnas.config` loads and
validates them from YAML.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from rlnas.model_config import ModelConfig

MAX_WIDTH = 4096
"""The most channels a stem or stage may have (wider layers do not fit in memory on a single device)."""
MAX_LAYERS = 64
"""The most searchable layers a stage may have."""
MAX_IMAGE_SIZE = 1024
"""The largest side ``data.image_size`` may resize images to."""


# ----------------------------------------------------------------------------------------------- env preset


@dataclass(frozen=True)
class StageConfig:
    """A stage: ``layers`` searchable layers producing ``width`` channels; the first one has ``stride``."""

    layers: int
    width: int
    stride: int = 1


@dataclass(frozen=True)
class SpaceConfig:
    """The searchable part of the child: a fixed stem, searchable stages, then pooling and a classifier."""

    stem_width: int
    stages: tuple[StageConfig, ...]
    operators: tuple[str, ...]
    keep_ratios: tuple[float, ...]
    stem_stride: int = 1


@dataclass(frozen=True)
class DataConfig:
    """Which data set, where it lives, and how the validation split is carved from the training set."""

    name: str
    root: str | None = None
    download: bool = False
    val_size: int = 5000
    train_subset: int | None = None
    split_seed: int = 0
    image_size: int | None = None


@dataclass(frozen=True)
class TrainConfig:
    """The per-child budget: train the full-width child, prune it, then fine-tune the pruned one."""

    steps: int
    finetune_steps: int
    batch_size: int = 128
    lr: float = 3e-3
    finetune_lr: float = 1e-3
    weight_decay: float = 1e-4
    optimizer: Literal["adamw", "sgd"] = "adamw"
    recalibration_batches: int = 10
    eval_batch_size: int = 1000
    threads: int | None = None


@dataclass(frozen=True)
class LatencyConfig:
    """The target device (type, thread count, batch size) and where a child's latency comes from.

    ``statistic``: how ``repeats`` timed calls (after ``warmup`` untimed ones) become one latency: ``min`` (the
    default: the least-disturbed call, which repeats within a few percent on a shared machine where the median
    drifts by tens of percent; see BENCHMARKS.md) or ``median``.

    ``source``: ``measured`` (each child timed end to end as above),
    ``table`` (predicted from a lookup table built by ``rlnas latency build``; ``table`` names the file, default
    ``runs/latency/{preset}__{device}__t{threads}__b{batch}.json``), ``flops`` (FLOPs times a milliseconds-per-FLOP
    constant measured once on the space's full-width reference child), or ``auto``: ``table`` when a table for
    this space and device exists, else ``measured``.
    """

    device: str = "cpu"
    threads: int = 1
    batch_size: int = 1
    warmup: int = 10
    repeats: int = 30
    statistic: Literal["min", "median"] = "min"
    source: Literal["auto", "measured", "table", "flops"] = "auto"
    table: str | None = None


@dataclass(frozen=True)
class RewardConfig:
    """How accuracy is traded against cost (see :mod:`rlnas.envs.reward` for the formulas).

    ``kind``: ``budget`` (the default: the most accurate child with cost <= target is sought; a child within the
    target loses ``slack`` x the fraction of the target it leaves unused, one over it ``penalty`` x its relative
    overshoot, and with ``infeasible: below`` 1 more, which ranks it below every child within the target;
    ``slack = penalty`` is TuNAS's absolute-value reward), ``mnasnet`` (soft,
    ``acc * (cost / target) ** w``), ``hard`` (alpha=0, beta=-1), ``linear``
    (``acc - linear_lambda * cost / target``), ``amc`` (``-(1 - acc) * ln(FLOPs)``), ``accuracy``, or ``custom``
    (``function: "module:name"`` called with accuracy, latency_ms, flops, cost, target; returns the reward).
    ``cost``: ``latency`` (target ``target_ms``) or ``flops`` (target ``target_mflops``).
    ``multiplier`` (``budget`` only; other kinds ignore it): ``adaptive`` (the default) starts from ``penalty``
    and adapts it as a Lagrange multiplier by dual ascent: after every new child it moves by ``multiplier_lr`` x
    (1 if the child was over the budget, else 0, minus ``over_share``), floored at 0, so it grows while more
    than ``over_share`` of the children overshoot and shrinks while fewer do; ``fixed`` keeps ``penalty``.
    """

    target_ms: float | None = None
    kind: Literal["budget", "mnasnet", "hard", "linear", "amc", "accuracy", "custom"] = "budget"
    cost: Literal["latency", "flops"] = "latency"
    target_mflops: float | None = None
    alpha: float = -0.07
    beta: float = -0.07
    linear_lambda: float = 0.1
    penalty: float = 0.03
    slack: float = 0.0
    infeasible: Literal["graded", "below"] = "graded"
    multiplier: Literal["fixed", "adaptive"] = "adaptive"
    multiplier_lr: float = 0.003
    over_share: float = 0.25
    function: str | None = None
    failure_reward: float = 0.0

    @property
    def latency_target(self) -> float | None:
        """The latency target in ms when the reward uses one (it is then part of the observation)."""
        return self.target_ms if self.kind not in ("accuracy", "amc") and self.cost == "latency" else None


@dataclass(frozen=True)
class TableConfig:
    """A table of published results for the ``tabular`` evaluator (format: :mod:`rlnas.envs.tabular`).

    ``path`` (``~`` and ``$VARS`` expanded; relative to the current directory) is a JSON object or a CSV file.
    ``codes[i]`` is how the table writes ``space.operators[i]`` (default: its index); ``keep_codes[j]`` how it
    writes ``space.keep_ratios[j]`` (null: the space has one keep-ratio and keys carry none). A layer's code is
    its operator's code followed by its keep-ratio's; a child's key joins its layers' codes with ``separator``.
    Metric fields are named by ``accuracy``, ``flops``, ``params`` and ``latency_ms`` (null: the table has
    none; a reward that needs latency then takes it from the preset's ``latency`` source, e.g. a latency table
    built for the space); ``accuracy_scale`` turns the table's accuracy into [0, 1].
    ``merge_identical``: keys whose records are identical in every field are one network (one record).
    """

    path: str
    codes: tuple[str, ...] | None = None
    keep_codes: tuple[str, ...] | None = None
    separator: str = ""
    accuracy: str = "mean_acc"
    accuracy_scale: float = 100.0
    flops: str | None = "flops"
    params: str | None = "params"
    latency_ms: str | None = None
    merge_identical: bool = True
    source: str = ""


@dataclass(frozen=True)
class SupernetConfig:
    """The weight-sharing supernet (``evaluator: supernet``; :mod:`rlnas.training.supernet`).

    Training: ``steps`` single-path steps of ``batch_size`` with ``optimizer``/``lr`` (cosine schedule);
    ``sampling`` picks each step's paths (``uniform``: one uniformly random path; ``sandwich``: the
    widest, the narrowest and one random path, gradients summed); ``distill`` (sandwich only; on in
    ``fashion_mnist``, off when absent so older resolved configs keep their training): in-place distillation,
    the widest path learns the true labels and the step's other paths its detached soft predictions;
    ``widest_warmup`` (0 when absent): the fraction of ``steps`` that comes first and trains every path at full
    width (random operators, true labels) before ``sampling`` takes over; the
    channel importance order (L1) is re-ranked every ``resort_every`` steps.
    Evaluation of a child: BatchNorm statistics re-estimated on
    ``recalibration_batches`` training batches of ``recalibration_batch_size`` (null: ``batch_size``; a few
    large batches give the same statistics as many small ones at a fraction of the dispatch cost), then
    ``finetune_steps`` at ``finetune_lr``,
    then accuracy on the first ``val_size`` examples of the (seeded, fixed) validation split (null: all of it).
    """

    steps: int = 1000
    batch_size: int = 64
    lr: float = 1e-2
    weight_decay: float = 1e-4
    optimizer: Literal["adamw", "sgd"] = "adamw"
    sampling: Literal["uniform", "sandwich"] = "sandwich"
    distill: bool = False
    widest_warmup: float = 0.0
    resort_every: int = 50
    recalibration_batches: int = 10
    recalibration_batch_size: int | None = None
    finetune_steps: int = 0
    finetune_lr: float = 1e-3
    val_size: int | None = None

    @property
    def recalibration_batch(self) -> int:
        """The batch size BatchNorm recalibration uses."""
        return self.recalibration_batch_size or self.batch_size


@dataclass(frozen=True)
class EnvPreset:
    """Everything an environment needs: data, search space, child budget, latency and reward.

    A prune preset has a ``model`` section (:class:`~rlnas.model_config.ModelConfig`) instead of ``space``.
    """

    name: str
    data: DataConfig
    space: SpaceConfig | None = field(default=None, kw_only=True)
    train: TrainConfig
    reward: RewardConfig
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    evaluator: Literal["scratch", "tabular", "supernet"] = "scratch"
    table: TableConfig | None = None
    supernet: SupernetConfig = field(default_factory=SupernetConfig)
    seed: int = 0
    model: ModelConfig | None = None


# --------------------------------------------------------------------------------------------- agent preset


@dataclass(frozen=True)
class PPOPreset:
    """PPO hyperparameters (stable-baselines3 names), tuned for short, expensive searches.

    The defaults are the shipped settings (``agents/ppo.yaml`` documents them; docs/defaults.md says how each
    was chosen). ``repeated_children: redraw`` and ``virtual_rollouts`` are joint-factorisation options: a
    ``sequential`` preset sets ``repeated_children`` (``neutral`` or ``reward``) and ``virtual_rollouts: 0``.

    ``reward_transform`` (``rank``, ``log_rank`` or ``none``), ``repeated_children`` and ``rank_window`` (rank
    among the last this many first visits; None: all) shape what the learner sees
    (:mod:`rlnas.agents.reward_shaping`); ``repeated_children: redraw`` also makes the policy draw again when it
    samples a child already evaluated (joint factorisation only, :mod:`rlnas.agents.policy`).
    ``factorisation``: ``joint`` (one step per child, independent per-dimension choices) or ``sequential`` (one
    decision per step, :mod:`rlnas.agents.sequential`). ``n_steps`` and ``batch_size`` count children either way.
    ``ent_half_life``: the entropy coefficient halves every this many children (None: constant).
    ``virtual_rollouts``: after each real rollout, this many rollouts answered by a reward model of the children
    evaluated so far, once its leave-one-out R^2 reaches ``surrogate_min_r2`` on at least
    ``surrogate_min_children`` children (DyNA-PPO, :mod:`rlnas.agents.dyna`; 0: off; joint factorisation only);
    an unseen child earns the predicted reward plus ``surrogate_exploration`` standard deviations of it.
    ``stall_children``: after this many evaluated children without a better reward, the policy's action logits
    are multiplied by ``stall_temper`` (:mod:`rlnas.agents.tempering`; None: off).
    """

    name: str
    algo: Literal["ppo"] = "ppo"
    n_steps: int = 8
    batch_size: int = 8
    n_epochs: int = 10
    learning_rate: float = 3e-2
    gamma: float = 1.0
    gae_lambda: float = 1.0
    clip_range: float = 0.5
    ent_coef: float = 0.03
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    net_arch: tuple[int, ...] = ()
    reward_transform: Literal["rank", "log_rank", "none"] = "log_rank"
    repeated_children: Literal["neutral", "reward", "redraw"] = "redraw"
    rank_window: int | None = None
    factorisation: Literal["joint", "sequential"] = "joint"
    ent_half_life: float | None = None
    virtual_rollouts: int = 4
    surrogate_min_r2: float = 0.3
    surrogate_min_children: int = 16
    surrogate_exploration: float = 0.0
    stall_children: int | None = None
    stall_temper: float = 0.5
    seed: int = 0


@dataclass(frozen=True)
class EvolutionPreset:
    """Regularized evolution (Real et al., 2019): tournament of ``sample_size`` from a population, mutate one
    layer choice of the winner, retire the oldest member. The first ``population_size`` children are random."""

    name: str
    algo: Literal["evolution"] = "evolution"
    population_size: int = 20
    sample_size: int = 5
    seed: int = 0


@dataclass(frozen=True)
class RandomPreset:
    """Random search: every child is drawn uniformly from the space."""

    name: str
    algo: Literal["random"] = "random"
    seed: int = 0


@dataclass(frozen=True)
class UniformPreset:
    """The uniform space members: every layer the same operator and keep-ratio, in the space's order."""

    name: str
    algo: Literal["uniform"] = "uniform"
    seed: int = 0


AgentPreset = PPOPreset | EvolutionPreset | RandomPreset | UniformPreset
"""A search strategy's preset; ``algo`` in the YAML file says which."""
STRATEGIES: dict[str, type] = {"ppo": PPOPreset, "evolution": EvolutionPreset, "random": RandomPreset,
                               "uniform": UniformPreset}  # fmt: skip
