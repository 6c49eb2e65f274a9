"""Prune a trained ResNet-18 to half its FLOPs (issue 20, item 4): uniform L1, random plans, the controller's plan.

PLACEHOLDER: the bench preset only (the comparison follows).
"""

from __future__ import annotations

import yaml

from rlnas.config import EnvPreset, load_env_preset
from rlnas.presets import resolve_preset

TRAIN_SUBSET, VAL_SIZE, PRETRAIN_EPOCHS = 12000, 2000, 3


def bench_preset() -> EnvPreset:
    """``prune_resnet18_fashion`` at the bench's scale."""
    data = yaml.safe_load(resolve_preset("prune_resnet18_fashion", "envs").read_text())
    data["name"] = "prune_resnet18_fashion_bench"
    data["data"] |= {"train_subset": TRAIN_SUBSET, "val_size": VAL_SIZE}
    data["model"]["pretrain"] = {"epochs": PRETRAIN_EPOCHS, "batch_size": 128, "lr": 0.003}
    return load_env_preset(data)
