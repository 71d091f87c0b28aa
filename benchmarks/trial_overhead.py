"""Trial overhead: 64 trivial trials through tunepipe vs a plain Ray Tune Tuner with defaults.

Both run in one process on one embedded Ray, one after the other; the table gives trials/s and
the ratio. Run: python benchmarks/trial_overhead.py [--trials 64] [--repeats 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]


def plain_ray(n: int, storage: str) -> float:
    from ray import tune
    from trivial import train

    t0 = time.perf_counter()
    tune.Tuner(
        train,
        param_space={"x": tune.uniform(0, 1)},
        tune_config=tune.TuneConfig(num_samples=n),
        run_config=tune.RunConfig(storage_path=storage, name="plain", verbose=0),
    ).fit()
    return time.perf_counter() - t0


def through_tunepipe(n: int, storage: str) -> float:
    from tunepipe.engine.runner import run_study
    from tunepipe.study import parse_study

    study = parse_study(
        {
            "name": "tp",
            "trainable": "trivial:train",
            "num_samples": n,
            "search_space": {"x": {"type": "uniform", "low": 0, "high": 1}},
            "scheduler": {"kind": "fifo", "max_epochs": 10},
        }
    )
    t0 = time.perf_counter()
    run_study(study, study_dir=ROOT / "benchmarks", storage=storage, progress=False)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--trials", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    from tunepipe.engine.session import init_ray

    init_ray(None, dashboard=False)
    times: dict[str, list[float]] = {"plain Ray Tune (defaults)": [], "tunepipe": []}
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            times["plain Ray Tune (defaults)"].append(plain_ray(args.trials, tmp))
            times["tunepipe"].append(through_tunepipe(args.trials, f"{tmp}/tp"))
    print(f"\n{args.trials} trivial trials (10 reports each), {args.repeats} repeat(s), medians:")
    print(f"{'runner':<28} {'seconds':>8} {'trials/s':>9}")
    rates = {}
    for name, ts in times.items():
        med = statistics.median(ts)
        rates[name] = args.trials / med
        print(f"{name:<28} {med:8.1f} {rates[name]:9.2f}")
    ratio = rates["tunepipe"] / rates["plain Ray Tune (defaults)"]
    print(f"tunepipe / plain: {ratio:.1f}x trials/s")


if __name__ == "__main__":
    main()
