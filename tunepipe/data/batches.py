"""Batches as torch tensors, reshuffled every epoch with a seeded generator (playbook D2)."""

from __future__ import annotations

from collections.abc import Iterator

import torch


def iterate_batches(
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (x, y) batches; with a generator, in a fresh random order (index gather, no row loop).

    The last partial batch is kept unless `drop_last` (batch norm cannot train on one sample).
    """
    n = len(x)
    order = torch.randperm(n, generator=generator) if generator is not None else None
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    for start in range(0, stop, batch_size):
        if order is None:
            yield x[start : start + batch_size], y[start : start + batch_size]
        else:
            idx = order[start : start + batch_size]
            yield x[idx], y[idx]
