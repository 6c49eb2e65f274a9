"""Can Torch-Pruning cut rlnas's own children (issue 20, item 5)? Exactness and cost against the hand surgery.

For ``--children`` random children of the preset's space (seeded), one copy is pruned by rlnas's rules and
surgery (:func:`rlnas.pruning.prune_child`), recording the channels every block keeps; a twin is pruned by
Torch-Pruning replaying exactly those channels (each recorded block's convolution as a group root). ``exact``:
children whose twin computes the same outputs (max |difference| <= 1e-5 on a random batch); ``ms``: the median
time of each engine per child, the Torch-Pruning time including its dependency-graph tracing.

    python bench/prune_engine.py [--env fashion_mnist] [--children 40] [--no-record]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import numpy as np
import torch
import torch_pruning as tp
from _record import record
from torch import Tensor

from rlnas.config import load_env_preset
from rlnas.envs.evaluators import space_for
from rlnas.pruning import build_model
from rlnas.pruning.prune import L1_SURGERY
from rlnas.space.ops import ConvBN
from rlnas.space.rules import rule_for
from rlnas.space.space import Arch


class Recording:
    """rlnas's L1 surgery, recording every block's kept output channels."""

    def __init__(self) -> None:
        self.kept: dict[int, Tensor] = {}

    def keep_top(self, block: ConvBN, in_idx: Tensor, keep: float) -> Tensor:
        out_idx = L1_SURGERY.keep_top(block, in_idx, keep)
        self.kept[id(block)] = out_idx
        return out_idx

    def restrict(self, block: ConvBN, out_idx: Tensor, in_idx: Tensor) -> None:
        L1_SURGERY.restrict(block, out_idx, in_idx)
        self.kept[id(block)] = out_idx


def rlnas_prune(model, arch: Arch) -> dict[str, Tensor]:
    """Prune ``model`` as :func:`rlnas.pruning.prune_child` does; the kept outputs per block name."""
    names = {id(m): n for n, m in model.named_modules() if isinstance(m, ConvBN)}
    recording = Recording()
    idx = torch.arange(model.stem.conv.out_channels)
    for layer, keep in zip(model.layers, arch.keeps, strict=True):
        idx = rule_for(layer).prune(layer, idx, keep, recording)
    from rlnas.pruning.surgery import slice_linear_inputs

    model.classifier = slice_linear_inputs(model.classifier, idx)
    return {names[k]: v for k, v in recording.kept.items()}


def tp_prune(model, kept: dict[str, Tensor], input_shape: tuple[int, ...]) -> None:
    """Replay ``kept`` with Torch-Pruning: each block's convolution pruned as a group root (once per group)."""
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=torch.zeros(1, *input_shape))
    widths = {name: model.get_submodule(name).conv.out_channels for name in kept}
    for name, out_idx in kept.items():
        conv = model.get_submodule(name).conv
        if conv.out_channels != widths[name]:
            continue  # already cut as part of an earlier block's group (a residual addition, a depthwise pair)
        drop = sorted(set(range(conv.out_channels)) - set(out_idx.tolist()))
        if drop:
            graph.get_pruning_group(conv, tp.prune_conv_out_channels, drop).prune()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="fashion_mnist")
    parser.add_argument("--children", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    preset = load_env_preset(args.env)
    space = space_for(preset)
    rng = np.random.default_rng(args.seed)
    x = torch.randn(8, *space.input_shape)
    exact, diffs, ours_ms, theirs_ms, failures = 0, [], [], [], []
    for i in range(args.children):
        arch = space.sample(rng)
        torch.manual_seed(args.seed + i)
        model = build_model(space, arch).eval()
        twin = copy.deepcopy(model)
        start = time.perf_counter()
        kept = rlnas_prune(model, arch)
        ours_ms.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        try:
            tp_prune(twin, kept, space.input_shape)
            theirs_ms.append((time.perf_counter() - start) * 1000)
            with torch.no_grad():
                diff = (model(x) - twin.eval()(x)).abs().max().item()
        except Exception as err:  # a child Torch-Pruning cannot replay is a finding, not a crash
            failures.append(f"{arch}: {type(err).__name__}: {err}"[:200])
            continue
        diffs.append(diff)
        exact += diff <= 1e-5
    table = "\n".join([
        "| engine | children | exact | median ms per child |",
        "|---|---|---|---|",
        f"| rlnas rules + surgery | {args.children} | (reference) | {statistics.median(ours_ms):.1f} |",
        f"| Torch-Pruning replay | {len(diffs)} | {exact} | {statistics.median(theirs_ms):.1f} |",
    ])  # fmt: skip
    headlines = {
        "exact_fraction": round(exact / args.children, 3),
        "max_abs_diff": f"{max(diffs):.2e}" if diffs else "n/a",
        "rlnas_ms": round(statistics.median(ours_ms), 1),
        "torch_pruning_ms": round(statistics.median(theirs_ms), 1) if theirs_ms else "n/a",
        "failures": len(failures),
    }
    about = (
        "Issue 20, item 5: Torch-Pruning replaying the channels rlnas's rules keep, on random children of the "
        f"{args.env} space (seed {args.seed}): exact when its pruned twin computes what rlnas's pruned child computes."
    )
    record("prune_engine", "One pruning engine? Torch-Pruning on rlnas's children", about, table, headlines,
           raw={"failures": failures[:5], "diffs": diffs}, append=not args.no_record)  # fmt: skip


if __name__ == "__main__":
    main()
