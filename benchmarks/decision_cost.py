"""Decision cost per report: PlaybookASHA vs Ray's AsyncHyperBandScheduler, same report stream.

Usage: python benchmarks/decision_cost.py [--trials 100 1000 10000] [--reports 100]

Every trial reports every epoch (decisions are not obeyed, so both schedulers see the same
stream and their rungs fill as fast as they can: the worst case for a per-milestone percentile).
Trials report in blocks of 16, epoch by epoch, like 16 concurrent workers. Cost = wall time of
the `on_trial_result` calls / reports, median over repeats (fewer repeats for big studies).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from ray.tune.schedulers import AsyncHyperBandScheduler  # noqa: E402

from tunepipe_schedulers.ray_asha import PlaybookASHA  # noqa: E402

BLOCK = 16


class _Trial:
    def __init__(self, trial_id: str) -> None:
        self.trial_id, self.config, self.status = trial_id, {"lr": 0.01}, "RUNNING"

    def set_config(self, config: dict) -> None:
        self.config = config


def curves(n: int, reports: int, seed: int = 0) -> np.ndarray:
    """Noisy decaying val losses, one row per trial (train loss = 0.9 x val)."""
    rng = np.random.default_rng(seed)
    t = np.arange(1, reports + 1)
    floor = rng.uniform(0.05, 1.0, (n, 1))
    return floor + 2.3 * np.exp(-rng.uniform(0.02, 0.2, (n, 1)) * t) + rng.normal(
        0, 0.01, (n, reports))  # fmt: skip


def run_once(make, values: np.ndarray) -> float:
    """Seconds per report for one pass of the stream through a fresh scheduler."""
    sched = make()
    n, reports = values.shape
    trials = [_Trial(str(i)) for i in range(n)]
    for trial in trials:
        sched.on_trial_add(None, trial)
    rows = values.tolist()
    elapsed = 0.0
    for start in range(0, n, BLOCK):
        block = range(start, min(start + BLOCK, n))
        results = {i: {"training_iteration": 0, "val_loss": 0.0, "train_loss": 0.0} for i in block}
        for epoch in range(reports):
            for i in block:
                res = results[i]
                res["training_iteration"], res["val_loss"] = epoch + 1, rows[i][epoch]
                res["train_loss"] = 0.9 * rows[i][epoch]
            t0 = time.perf_counter()
            for i in block:
                sched.on_trial_result(None, trials[i], results[i])
            elapsed += time.perf_counter() - t0
    return elapsed / (n * reports)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--reports", type=int, default=100)
    args = parser.parse_args()
    kw = dict(metric="val_loss", mode="min", max_t=args.reports, grace_period=1,
              reduction_factor=4)  # fmt: skip
    makers = {"PlaybookASHA": lambda: PlaybookASHA(**kw),
              "Ray AsyncHyperBand": lambda: AsyncHyperBandScheduler(**kw)}  # fmt: skip
    print(f"{'trials':>7} | {'reports':>9} | {'repeats':>7} | "
          + " | ".join(f"{name + ' us/report':>27}" for name in makers))  # fmt: skip
    for n in args.trials:
        values = curves(n, args.reports)
        repeats = 5 if n <= 100 else 3 if n <= 1000 else 1
        cells = []
        for make in makers.values():
            costs = [run_once(make, values) for _ in range(repeats)]
            cells.append(f"{statistics.median(costs) * 1e6:>27.1f}")
        print(f"{n:>7} | {n * args.reports:>9} | {repeats:>7} | " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
