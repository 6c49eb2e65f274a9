"""The trained model a prune preset starts from: built, then its checkpoint loaded or pretrained (cached)."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from rlnas.config import EnvPreset
from rlnas.pruning.foreign.models import build_named_model, load_checkpoint
from rlnas.training.data import DataSplits, dataset_shape
from rlnas.training.trainer import fit

PRETRAIN_DIR = Path("runs") / "pretrained"


def trained_model(
    preset: EnvPreset, data: DataSplits, *, device: str | torch.device = "cpu", cache_dir: Path = PRETRAIN_DIR
) -> nn.Module:
    """The preset's model with its weights: ``model.checkpoint`` loaded, or ``model.pretrain`` epochs of
    training (cached in ``cache_dir`` under a digest of everything that decides them), else as initialised."""
    cfg = preset.model
    if cfg is None:
        raise ValueError(f"env preset {preset.name!r} has no model section: it names no model to prune")
    input_shape, num_classes = dataset_shape(preset.data)
    torch.manual_seed(preset.seed)
    model = build_named_model(cfg.name, input_shape, num_classes, cfg.small_input)
    if cfg.checkpoint is not None:
        load_checkpoint(model, cfg.checkpoint)
    elif cfg.pretrain is not None:
        path = pretrained_path(preset, cache_dir)
        if path.is_file():
            load_checkpoint(model, path)
        else:
            p = cfg.pretrain
            steps = p.epochs * math.ceil(len(data.train) / p.batch_size)
            fit(model, data.train, steps=steps, batch_size=p.batch_size, lr=p.lr, weight_decay=p.weight_decay,
                optimizer=p.optimizer, device=device, seed=preset.seed, progress="pretrain")  # fmt: skip
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".partial")
            torch.save(model.cpu().state_dict(), partial)
            partial.replace(path)
    return model.cpu().eval()


def pretrained_path(preset: EnvPreset, cache_dir: Path = PRETRAIN_DIR) -> Path:
    """Where the pretrained weights of ``preset``'s model are cached: model, data split, pretraining, seed."""
    data = {k: v for k, v in asdict(preset.data).items() if k not in ("root", "download")}
    model = asdict(preset.model)
    key = {"name": model["name"], "small_input": model["small_input"], "pretrain": model["pretrain"]}
    payload = json.dumps({"model": key, "data": data, "seed": preset.seed}, sort_keys=True)
    digest = hashlib.sha256(payload.encode()).hexdigest()[:16]
    return cache_dir / f"{preset.model.name.replace(':', '_').replace('.', '_')}__{digest}.pt"


def weights_digest(model: nn.Module) -> str:
    """A short digest of the model's parameters and buffers: evaluations of other weights are not reused."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]
