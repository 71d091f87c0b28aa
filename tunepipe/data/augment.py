"""Batch-time augmentation (the case study's net3): a horizontal flip that mirrors x coordinates
and swaps left/right labels. Applied to training batches as they are drawn, never to the data.

The decision (which column goes where, how a coordinate maps in scaled units) is plain numpy,
worked out once; the flip itself is a pure tensor function, so it runs wherever the batch lives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tunepipe.errors import DataError

if TYPE_CHECKING:  # torch is imported where a flip is made or used, not when data is read
    import torch


@dataclass(frozen=True)
class FlipPlan:
    """After a flip, scaled label j is a[j] + b[j] * y[perm[j]] (b < 0 mirrors an x)."""

    perm: torch.Tensor  # int64 (k,)
    a: torch.Tensor  # float32 (k,)
    b: torch.Tensor
    probability: float = 0.5

    def to(self, device: torch.device) -> FlipPlan:
        p = self.probability
        return FlipPlan(self.perm.to(device), self.a.to(device), self.b.to(device), p)


def swap_order(labels: list[str], swap: list[tuple[str, str]], x_suffix: str) -> list[int]:
    """perm[j]: the label column whose value label j takes after a flip. Names in `swap` are label
    columns or keypoints (<name>_x, <name>_y); an x column must pair with an x column."""
    index = {name: j for j, name in enumerate(labels)}
    perm = list(range(len(labels)))
    for i, pair in enumerate(swap):
        for left, right in _column_pairs(pair, index, x_suffix, i):
            if left.endswith(x_suffix) != right.endswith(x_suffix):
                raise DataError(
                    f"data.augment.hflip.swap[{i}]: {left!r} and {right!r} pair an x "
                    f"coordinate (ending {x_suffix!r}) with another kind of column"
                )
            perm[index[left]], perm[index[right]] = index[right], index[left]
    return perm


def _column_pairs(pair, index, x_suffix, i):
    if all(name in index for name in pair):
        return [tuple(pair)]
    suffixes = (x_suffix, x_suffix[:-1] + "y") if x_suffix.endswith("x") else (x_suffix,)
    cols = [tuple(f"{name}{s}" for name in pair) for s in suffixes]
    unknown = [c for pair_cols in cols for c in pair_cols if c not in index]
    if unknown:
        raise DataError(
            f"data.augment.hflip.swap[{i}]: {pair[0]!r} / {pair[1]!r} are neither label columns "
            f"nor keypoints with label columns ({unknown[0]!r} is not a label); list them in "
            "data.label"
        )
    return cols


def flip_plan(
    labels: list[str],
    swap: list[tuple[str, str]],
    x_suffix: str,
    mean: np.ndarray,
    scale: np.ndarray,
    width: int,
    probability: float = 0.5,
) -> FlipPlan:
    """The flip in the targets' scaled units (value = (pixel - mean) / scale). A pixel at x
    mirrors to width - 1 - x (pixel centres at 0 .. width - 1)."""
    perm = np.asarray(swap_order(labels, swap, x_suffix))
    is_x = np.array([name.endswith(x_suffix) for name in labels])
    m, h = np.asarray(mean, np.float64), np.asarray(scale, np.float64)
    mk, hk = m[perm], h[perm]
    a = np.where(is_x, (width - 1 - mk - m) / h, (mk - m) / h)
    b = np.where(is_x, -hk / h, hk / h)
    return FlipPlan(
        _torch().as_tensor(perm, dtype=_torch().int64),
        _torch().as_tensor(a, dtype=_torch().float32),
        _torch().as_tensor(b, dtype=_torch().float32),
        probability,
    )


def hflip(x: torch.Tensor, y: torch.Tensor, plan: FlipPlan) -> tuple[torch.Tensor, torch.Tensor]:
    """Every image mirrored left-right, every label row mirrored and swapped (NaN stays NaN)."""
    if plan.perm.numel() == 0:  # class labels do not change with a flip
        return x.flip(-1), y
    return x.flip(-1), plan.a + plan.b * y[:, plan.perm]


def random_hflip(
    x: torch.Tensor, y: torch.Tensor, plan: FlipPlan, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random share (plan.probability) of the batch flipped, the rest as it was."""
    import torch

    chosen = torch.rand(len(x), generator=generator) < plan.probability
    chosen = chosen.to(x.device)
    fx, fy = hflip(x, y, plan)
    x = torch.where(chosen.view(-1, *([1] * (x.dim() - 1))), fx, x)
    return x, (torch.where(chosen.view(-1, 1), fy, y) if plan.perm.numel() else y)


def _torch():
    import torch

    return torch
