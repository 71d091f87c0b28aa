"""The LR range test (Smith 2015/2017, "Cyclical Learning Rates for Training Neural Networks";
fastai's `lr_find`): train while the rate rises exponentially, watch the smoothed loss (P5, L1).

`suggest` is pure (numpy) so its rule is tested on plain numbers; `lr_range_test` runs the sweep.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch

from tunepipe.data import iterate_batches
from tunepipe.playbook.result import LRRange

SMOOTHING = 0.9  # EMA weight; fastai's 0.98 averages ~50 steps, half of a 100-step sweep
DIVERGE_FACTOR = 4.0  # stop once the smoothed loss exceeds 4x its minimum (fastai, Smith)
SKIP_START = 5  # the first points mostly measure the EMA's warm-up, not the rate


def lr_range_test(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    batch_size: int,
    start: float = 1e-7,
    end: float = 10.0,
    steps: int = 100,
    generator: torch.Generator | None = None,
) -> LRRange:
    """Sweep lr from `start` to `end` over `steps` optimizer steps on (x, y); the curve + advice.

    Stops early when the loss diverges (non-finite, or smoothed > DIVERGE_FACTOR x its minimum).
    """
    model.train()
    lrs = [start * (end / start) ** (i / (steps - 1)) for i in range(steps)]  # exponential
    losses: list[float] = []
    batches = _endless(x, y, batch_size, generator)
    for lr in lrs:
        for group in optimizer.param_groups:
            group["lr"] = lr
        xb, yb = next(batches)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb), yb)
        losses.append(float(loss.item()))
        if _diverged(smooth(losses)):
            break
        if loss.requires_grad:
            loss.backward()
            optimizer.step()
    lrs, smoothed = lrs[: len(losses)], smooth(losses)
    suggested, lo_hi, min_lr, steep = suggest(np.asarray(lrs), np.asarray(smoothed))
    return LRRange(lrs, losses, smoothed, suggested, lo_hi, min_lr, steep)


def smooth(losses: list[float]) -> list[float]:
    """Bias-corrected exponential moving average (as in Adam); NaN from the first non-finite on."""
    out, avg = [], 0.0
    for i, value in enumerate(losses):
        if not math.isfinite(value) or (out and not math.isfinite(out[-1])):
            out.append(math.nan)
            continue
        avg = SMOOTHING * avg + (1 - SMOOTHING) * value
        out.append(avg / (1 - SMOOTHING ** (i + 1)))
    return out


def _diverged(smoothed: list[float]) -> bool:
    """Stop the sweep: the loss turned non-finite or rose past DIVERGE_FACTOR x its minimum."""
    last = smoothed[-1]
    return not math.isfinite(last) or last > DIVERGE_FACTOR * min(smoothed)


def suggest(
    lrs: np.ndarray, smoothed: np.ndarray
) -> tuple[float | None, tuple[float, float] | None, float | None, float | None]:
    """(suggested lr, suggested range, lr at the minimum, lr of steepest descent).

    Suggested: fastai's "valley" rule (the longest stretch over which the smoothed loss keeps
    falling; half-way along it), capped at min-lr / 10 (the other rule of Smith and
    fastai: a tenth of where the loss bottoms out) and never below min-lr / 100. The sweep's
    first, noisy steps at tiny rates thus never decide: a regression MLP's steepest point there
    (2.5e-7) fails its own overfit check. Range: [suggested / 10, lr at the minimum]. Steepest:
    where the loss falls fastest within those two decades below the minimum (reported only).
    None when the loss never fell.
    """
    ok = np.isfinite(smoothed) & (lrs > 0)
    if ok.sum() < SKIP_START + 3:
        return None, None, None, None
    idx = np.flatnonzero(ok)
    i_min = int(idx[np.argmin(smoothed[idx])])
    min_lr = float(lrs[i_min])
    window = idx[(idx >= SKIP_START) & (idx <= i_min)]
    if len(window) < 3 or smoothed[i_min] >= smoothed[idx[0]] * 0.99:
        return None, None, min_lr, None  # the loss never fell: no rate in the sweep trains
    valley = float(lrs[window[valley_index(smoothed[window])]])
    suggested = min(max(valley, min_lr / 100), min_lr / 10)
    near = window[lrs[window] >= min_lr / 100]
    near = near if len(near) >= 3 else window
    slope = np.gradient(smoothed[near], np.log(lrs[near]))
    steep = float(lrs[near[int(np.argmin(slope))]])
    return suggested, (suggested / 10, min_lr), min_lr, steep


def valley_index(losses: np.ndarray) -> int:
    """fastai's `valley` (the `lr_find` default since fastai 2.4): the index half-way along the
    longest decreasing subsequence of the curve."""
    n = len(losses)
    run = [1] * n  # length of the longest decreasing subsequence ending at i
    start, end = 0, 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and run[i] < run[j] + 1:
                run[i] = run[j] + 1
        if run[i] > run[end]:
            end, start = i, i - run[i]
    third = (end - start) / 3
    return min(max(start + int(third) + int(third / 2), 0), n - 1)


def _endless(
    x: torch.Tensor, y: torch.Tensor, batch_size: int, generator: torch.Generator | None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches forever: a fresh shuffled pass over the split whenever one ends (D2)."""
    while True:
        yield from iterate_batches(x, y, batch_size, generator, drop_last=True)
