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
    reuse_buffers: bool = False,
    device: torch.device | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (x, y) batches; with a generator, in a fresh random order (index gather, no row loop).

    The last partial batch is kept unless `drop_last` (batch norm cannot train on one sample).
    `reuse_buffers`: shuffled batches are gathered into two preallocated buffers, alternately, so
    a batch stays valid only until the next-but-one is drawn — right for a training loop that
    finishes each step before drawing again, wrong for `list(iterate_batches(...))`. A gather into
    a preallocated buffer moved 13 GB/s on keypoints-sized rows here, against 6 for `x[idx]`
    (benchmarks/loader.py). `device` (with reuse_buffers): the buffers are pinned host memory and
    each batch is copied to that device without blocking.
    """
    n = len(x)
    order = torch.randperm(n, generator=generator) if generator is not None else None
    if order is not None and x.device != order.device:
        order = order.to(x.device)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    buffers = None
    if reuse_buffers and order is not None:
        buffers = GatherBuffers(x, y, batch_size, device)
    for i, start in enumerate(range(0, stop, batch_size)):
        if order is None:
            yield x[start : start + batch_size], y[start : start + batch_size]
        elif buffers is None:
            idx = order[start : start + batch_size]
            yield x[idx], y[idx]
        else:
            yield buffers.gather(i % 2, order[start : start + batch_size])


class GatherBuffers:
    """Two (x, y) buffer pairs of one batch's size, filled by torch.index_select(out=).

    With a `device` other than the data's, the buffers are pinned and each gathered batch is
    copied there with non_blocking; a slot is refilled only after its last copy finished (an
    event per slot), since the host runs ahead of the GPU.
    """

    def __init__(
        self, x: torch.Tensor, y: torch.Tensor, batch_size: int, device: torch.device | None
    ) -> None:
        rows = min(batch_size, len(x))
        self.copy_to = device if device is not None and device != x.device else None
        pin = self.copy_to is not None and self.copy_to.type == "cuda"

        def empty(t: torch.Tensor) -> torch.Tensor:
            return torch.empty((rows, *t.shape[1:]), dtype=t.dtype, device=t.device, pin_memory=pin)

        self.x, self.y = [empty(x) for _ in range(2)], [empty(y) for _ in range(2)]
        self.events: list = [None, None]
        self.source = (x, y)

    def gather(self, slot: int, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.events[slot] is not None:
            self.events[slot].synchronize()  # the copy out of this slot has finished
        k = len(idx)
        xb, yb = self.x[slot][:k], self.y[slot][:k]
        torch.index_select(self.source[0], 0, idx, out=xb)
        torch.index_select(self.source[1], 0, idx, out=yb)
        if self.copy_to is None:
            return xb, yb
        xd = xb.to(self.copy_to, non_blocking=True)
        yd = yb.to(self.copy_to, non_blocking=True)
        if self.copy_to.type == "cuda":
            self.events[slot] = torch.cuda.Event()
            self.events[slot].record()
        return xd, yd
