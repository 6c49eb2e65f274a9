"""A weight-sharing supernet over a search space: single-path one-shot training, extraction of pruned children.

Every searchable layer holds all of the space's operators at full width, each the very module
:class:`~rlnas.space.model.ChildNet` builds for it. A training step samples paths (an operator and a keep-ratio
per layer; ``supernet.sampling``: the ``sandwich`` of widest, narrowest and one random path, or one ``uniform``
path) and trains only them. A keep-ratio is applied as channel masks by each operator's rule
(:mod:`rlnas.space.rules`), keeping exactly the channels :func:`~rlnas.pruning.prune_child` would keep, so the
masked path computes on its kept channels what the physically pruned child computes, and its weights are the ones
the child inherits. The importance order (L1) is an index per prunable convolution, re-ranked every
``resort_every`` steps, not a physical permutation: a layer's output is read by every operator of the next layer.
``supernet.distill`` trains the sandwich's other paths on the widest path's soft predictions, and
``supernet.widest_warmup`` trains only full-width paths first. Why, and what each choice measured: docs/supernet.md.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from rlnas.config import SupernetConfig
from rlnas.pruning import build_model, prune_child
from rlnas.pruning.importance import l1_importance
from rlnas.pruning.prune import kept_channels
from rlnas.space import Arch, SearchSpace
from rlnas.space.model import ChildNet
from rlnas.space.ops import OPERATORS, ConvBN
from rlnas.space.rules import rule_for
from rlnas.training.data import Split
from rlnas.training.trainer import TrainingDiverged, cosine_optimizer

SUPERNET_FORMAT_VERSION = 1


class SupernetMismatch(ValueError):
    """A saved supernet belongs to another search space; the message names both fingerprints."""


class Supernet(nn.Module):
    """All operators of every layer at full width; ``forward(x, arch)`` runs one path with channel masks."""

    def __init__(self, space: SearchSpace) -> None:
        super().__init__()
        self.space = space
        c = space.config
        self.stem = ConvBN(space.input_shape[0], c.stem_width, 3, c.stem_stride)
        self.layers = nn.ModuleList(
            nn.ModuleDict({op: OPERATORS[op](slot.c_in, slot.c_out, slot.stride) for op in space.operators})
            for slot in space.slots
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(space.slots[-1].c_out, space.num_classes)
        self._order: dict[nn.Conv2d, Tensor] = {}

    def resort(self) -> None:
        """Re-rank the output channels of every prunable convolution by L1 importance (most important first)."""
        self._order = {conv: _ranking(conv) for conv in self.prunable_convs()}

    def prunable_convs(self) -> Iterator[nn.Conv2d]:
        """The convolutions whose output channels a keep-ratio prunes (each operator's rule says which)."""
        for layer in self.layers:
            for op in layer.values():
                block = rule_for(op).prunable(op)
                if block is not None:
                    yield block.conv

    def forward(self, x: Tensor, arch: Arch) -> Tensor:
        """The path ``arch``: kept channels carry what the pruned child computes, pruned channels are zero."""
        x, mask = self.stem(x), None
        for layer, op, keep in zip(self.layers, arch.ops, arch.keeps, strict=True):
            module = layer[op]
            x, mask = rule_for(module).masked_forward(module, x, mask, functools.partial(self._keep_mask, keep))
        return self.classifier(torch.flatten(self.pool(x), 1))

    def extract(self, arch: Arch) -> ChildNet:
        """The child ``arch`` as an ordinary pruned :class:`ChildNet` holding the supernet's weights."""
        return prune_child(self.extract_unpruned(arch), arch)

    def extract_unpruned(self, arch: Arch) -> ChildNet:
        """The full-width child ``arch`` with the supernet's weights (what :func:`prune_child` then prunes)."""
        with torch.random.fork_rng(devices=[]):  # the child's own initialisation is overwritten; spare the RNG
            model = build_model(self.space, arch).to(self.classifier.weight.device)
        model.stem.load_state_dict(self.stem.state_dict())
        for child_layer, layer, op in zip(model.layers, self.layers, arch.ops, strict=True):
            child_layer.load_state_dict(layer[op].state_dict())
        model.classifier.load_state_dict(self.classifier.state_dict())
        return model

    # ------------------------------------------------------------------------------------------ masked path

    def _keep_mask(self, keep: float, block: ConvBN) -> Tensor | None:
        """The output-channel mask of a prunable ``block`` at ``keep``: its top-ranked channels (None: all)."""
        conv = block.conv
        channels = conv.out_channels
        count = kept_channels(channels, keep)
        if count == channels:
            return None
        if conv not in self._order:
            self._order[conv] = _ranking(conv)
        mask = torch.zeros(channels, device=conv.weight.device)
        mask[self._order[conv][:count]] = 1.0
        return mask.view(1, -1, 1, 1)


def _ranking(conv: nn.Conv2d) -> Tensor:
    importance = l1_importance(conv)
    return torch.topk(importance, len(importance)).indices  # as top_channels ranks, so the top-k sets agree


# ---------------------------------------------------------------------------------------------- training


def sample_paths(space: SearchSpace, sampling: str, rng: np.random.Generator, *, widest: bool = False) -> list[Arch]:
    """The paths one training step trains: one uniform path, or the sandwich (widest, narrowest, random).

    ``widest``: the same number of paths with random operators, all at full width (the warm-up).
    """
    path = space.sample(rng)
    n, full = space.num_layers, max(space.keep_ratios)
    if sampling == "uniform":
        paths = [path]
    else:
        ops = [space.sample(rng).ops for _ in range(2)]
        paths = [Arch(ops[0], (full,) * n), Arch(ops[1], (min(space.keep_ratios),) * n), path]
    return [Arch(p.ops, (full,) * n) for p in paths] if widest else paths


@dataclass(frozen=True)
class SupernetTraining:
    """What training took: steps, seconds and the mean loss of the last 10% of steps."""

    steps: int
    seconds: float
    final_loss: float


def train_supernet(
    supernet: Supernet,
    data: Split,
    cfg: SupernetConfig,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    log_dir: str | Path | None = None,
    progress_bar: bool = True,
) -> SupernetTraining:
    """Train ``supernet`` on ``cfg.steps`` sampled paths (cosine learning rate); loss curves to TensorBoard.

    TensorBoard tags (``log_dir``): ``supernet/loss``, ``supernet/lr``.
    """
    torch.manual_seed(seed)
    supernet.to(device).train()
    opt, schedule = cosine_optimizer(supernet.parameters(), cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.steps)
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    writer = _summary_writer(log_dir)
    tail, losses = max(1, cfg.steps // 10), []
    started = time.perf_counter()
    bar = tqdm(total=cfg.steps, desc="supernet", unit="step", disable=not progress_bar)
    batches = _endless_batches(data, cfg.batch_size, generator)
    warmup = round(cfg.widest_warmup * cfg.steps)
    for step in range(cfg.steps):
        if step % cfg.resort_every == 0:
            supernet.resort()
        x, y = next(batches)
        x, y = x.to(device), y.to(device)
        opt.zero_grad(set_to_none=True)
        total, targets, warming = 0.0, y, step < warmup
        for i, path in enumerate(sample_paths(supernet.space, cfg.sampling, rng, widest=warming)):
            logits = supernet(x, path)
            loss = F.cross_entropy(logits, targets)
            if not torch.isfinite(loss):
                raise TrainingDiverged(f"supernet loss became {loss.item()} at step {step} (path {path})")
            loss.backward()
            total += loss.item()
            if cfg.distill and i == 0 and not warming:  # the sandwich's widest path teaches the step's others
                targets = logits.detach().softmax(dim=1)
        opt.step()
        schedule.step()
        if step >= cfg.steps - tail:
            losses.append(total)
        if writer is not None:
            writer.add_scalar("supernet/loss", total, step)
            writer.add_scalar("supernet/lr", schedule.get_last_lr()[0], step)
        bar.set_postfix(loss=f"{total:.3f}", refresh=False)
        bar.update()
    bar.close()
    supernet.resort()
    if writer is not None:
        writer.close()
    return SupernetTraining(cfg.steps, time.perf_counter() - started, float(np.mean(losses)))


def _endless_batches(data: Split, batch_size: int, generator: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
    if len(data) == 0:
        raise ValueError("cannot train a supernet on an empty split: check data.train_subset and data.val_size")
    while True:
        yield from data.batches(batch_size, generator)


def _summary_writer(log_dir: str | Path | None):
    if log_dir is None:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(log_dir))


# ------------------------------------------------------------------------------------------- save / load


def save_supernet(
    supernet: Supernet, path: str | Path, cfg: SupernetConfig, training: SupernetTraining, **extra: object
) -> Path:
    """Save weights, the space declaration and fingerprint, the training settings and what training took."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")  # renamed when complete: a killed save leaves no broken file
    torch.save(
        {
            "format_version": SUPERNET_FORMAT_VERSION,
            "space": supernet.space.declaration(),
            "fingerprint": supernet.space.fingerprint,
            "settings": dataclasses.asdict(cfg),
            "training": dataclasses.asdict(training),
            **extra,
            "state_dict": supernet.state_dict(),
        },
        partial,
    )
    partial.replace(path)
    return path


def load_supernet(path: str | Path, space: SearchSpace, device: str | torch.device = "cpu") -> tuple[Supernet, dict]:
    """Load a saved supernet for ``space``; returns it and its saved metadata (settings, training, ...).

    Raises :class:`SupernetMismatch` when it was trained for another search space.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no supernet at {path}: train one with `rlnas supernet train --env PRESET`")
    saved = torch.load(path, map_location=device, weights_only=True)
    if saved.get("format_version") != SUPERNET_FORMAT_VERSION:
        raise ValueError(
            f"{path}: supernet format version {saved.get('format_version')!r} is not supported "
            f"(this rlnas reads version {SUPERNET_FORMAT_VERSION}); train it again with `rlnas supernet train`"
        )
    if saved["fingerprint"] != space.fingerprint:
        raise SupernetMismatch(
            f"{path} was trained for search space {saved['fingerprint']}, but this preset's space is "
            f"{space.fingerprint}: train one for this preset (`rlnas supernet train --env PRESET`) or leave "
            "out --supernet so the search trains one"
        )
    supernet = Supernet(space).to(device)
    supernet.load_state_dict(saved.pop("state_dict"))
    supernet.resort()
    return supernet, saved
