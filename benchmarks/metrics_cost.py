"""Cost of the study metrics: the digits study's wall time with `monitoring.metrics` on vs off.

Both settings run in one process on one embedded Ray (dashboard and metrics agent on, as
`tunepipe run` starts it), alternating in ABBA order so load drift hits both alike; the table
gives the median wall of each and their ratio. Target: metrics on within 3% of off. Because a
shared machine makes walls noisy, it also sums the time the driver spends setting the gauges
(StudyMonitor._export, every step of Tune's loop), a direct, low-noise measure of the same cost.

    PYTHONPATH=. python benchmarks/metrics_cost.py [--repeats 3] [--num-samples 20]

Run it on a quiet machine: on a shared one the noise is far larger than the 3% it measures.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]
STUDY = ROOT / "examples" / "digits.yaml"


def one_run(metrics: bool, storage: str, num_samples: int | None) -> tuple[float, float]:
    """(wall of run_study, the search's own wall from summary.json) in seconds."""
    from tunepipe.config.monitoring import MonitoringConfig
    from tunepipe.engine.runner import run_study
    from tunepipe.study import load_study

    study = load_study(STUDY)
    study = study.model_copy(update={"monitoring": MonitoringConfig(metrics=metrics)})
    t0 = time.perf_counter()
    outcome = run_study(
        study, study_dir=STUDY.parent, storage=storage, num_samples=num_samples, progress=False
    )
    return time.perf_counter() - t0, float(outcome.summary["wall_seconds"])


class ExportClock:
    """Wraps StudyMonitor._export to add up its calls and the seconds spent in them."""

    def __init__(self) -> None:
        from tunepipe.monitoring.metrics import StudyMonitor

        self.calls, self.seconds = 0, 0.0
        inner = StudyMonitor._export

        def timed(monitor, now):
            t0 = time.perf_counter()
            try:
                return inner(monitor, now)
            finally:
                self.calls += 1
                self.seconds += time.perf_counter() - t0

        StudyMonitor._export = timed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=3, help="ABBA pairs: 2 runs of each per pair")
    ap.add_argument("--num-samples", type=int, default=None, help="default: the study's (20)")
    args = ap.parse_args()
    from tunepipe.engine.session import init_ray

    init_ray(None, dashboard=True)
    clock = ExportClock()
    walls: dict[bool, list[float]] = {True: [], False: []}
    order = [True, False, False, True] * args.repeats
    with tempfile.TemporaryDirectory() as tmp:
        for i, metrics in enumerate(order):
            wall, _ = one_run(metrics, f"{tmp}/{i}", args.num_samples)
            walls[metrics].append(wall)
            print(f"run {i + 1}/{len(order)}: metrics {'on ' if metrics else 'off'} {wall:.1f} s")
    n = args.num_samples or "20"
    print(f"\ndigits study ({n} samples), {len(order)} runs in ABBA order, medians:")
    print(f"{'metrics':<8} {'wall s':>8} {'min s':>8} {'runs':>5}")
    for metrics, ts in walls.items():
        label = "on" if metrics else "off"
        print(f"{label:<8} {statistics.median(ts):8.2f} {min(ts):8.2f} {len(ts):5d}")
    ratio = statistics.median(walls[True]) / statistics.median(walls[False])
    print(f"on / off: {ratio:.3f} (target <= 1.03)")
    share = clock.seconds / sum(walls[True])
    print(
        f"gauge setting: {clock.calls} steps, {clock.seconds:.3f} s in all "
        f"({1e3 * clock.seconds / max(clock.calls, 1):.3f} ms a step, {share:.2%} of the walls)"
    )


if __name__ == "__main__":
    main()
