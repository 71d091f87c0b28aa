"""Batch gathering speed: tunepipe's loader beside memcpy, numpy and torch's DataLoader, one run.

Keypoints-sized rows by default (7049 rows of 96×96 float32, 260 MB an epoch; a batch of
128 rows is 4.7 MB), one thread, shuffled batches as a training epoch draws them. GB/s is the
bytes of the batches produced per second (x only; the labels are small). Medians of --repeats.

    python benchmarks/loader.py [--rows 7049] [--features 9216] [--batch 128] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def epoch_seconds(fn, repeats: int) -> float:
    fn()  # warm: first-touch page faults and allocator growth are not the loader's speed
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def methods(x, y, batch: int) -> dict:
    import numpy as np
    import torch

    from tunepipe.data import iterate_batches

    gen = torch.Generator().manual_seed(0)
    xn, order = x.numpy(), torch.randperm(len(x), generator=gen)
    out = torch.empty((batch, *x.shape[1:]), dtype=x.dtype)

    def drain(batches) -> None:
        for _ in batches:
            pass

    def memcpy() -> None:  # the ceiling: contiguous copies of batch-sized blocks
        for s in range(0, len(x) - batch + 1, batch):
            out.copy_(x[s : s + batch])

    def numpy_gather() -> None:
        on = out.numpy()
        for s in range(0, len(x) - batch + 1, batch):
            np.take(xn, order[s : s + batch].numpy(), axis=0, out=on)

    def dataloader() -> None:
        ds = torch.utils.data.TensorDataset(x, y)
        drain(torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, generator=gen))

    return {
        "memcpy (contiguous, preallocated)": memcpy,
        "numpy take (preallocated)": numpy_gather,
        "x[idx] (tunepipe before)": lambda: drain(iterate_batches(x, y, batch, gen)),
        "tunepipe iterate_batches": lambda: drain(
            iterate_batches(x, y, batch, gen, reuse_buffers=True)
        ),
        "torch DataLoader (shuffle)": dataloader,
    }


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=7049)
    ap.add_argument("--features", type=int, default=96 * 96)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    x = torch.rand(args.rows, args.features)
    y = torch.rand(args.rows, 30)
    full = args.rows - args.rows % args.batch
    rates = {}
    for name, fn in methods(x, y, args.batch).items():
        rows = args.rows if "memcpy" not in name and "numpy" not in name else full
        rates[name] = rows * args.features * 4 / epoch_seconds(fn, args.repeats) / 1e9
    print(
        f"\n{args.rows} rows × {args.features} float32, batch {args.batch}, one thread, "
        f"median of {args.repeats} epochs"
    )
    print(f"{'method':<36} {'GB/s':>7}")
    for name, rate in rates.items():
        print(f"{name:<36} {rate:>7.2f}")
    return rates


if __name__ == "__main__":
    main()
