"""What each experiment tracker adds to a study's wall time (docs/trackers.md).

The digits study (`--set num_samples=N --set scheduler.max_epochs=E`, no sanity stage, no test
split) runs on one embedded Ray with `trackers:` none, tensorboard, mlflow (a fresh sqlite store
each run) and wandb (offline, a fresh folder each run), in rotating order so load drift hits all
alike; the table gives the median wall time of each and its ratio to no tracker.

    unshare -rn sh -c 'ip link set lo up && PYTHONPATH=. python benchmarks/tracker_overhead.py'
    [--samples 8] [--epochs 5] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from tunepipe.engine.runner import run_study
from tunepipe.engine.session import init_ray
from tunepipe.study import load_study

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TRACKERS = ["none", "tensorboard", "mlflow", "wandb"]


def one_run(tracker: str, samples: int, epochs: int, root: Path) -> float:
    sets = [
        f"num_samples={samples}",
        f"scheduler.max_epochs={epochs}",
        "scheduler.grace_period=1",
        "playbook.sanity=false",
        "data.test_fraction=0",
        f"trackers=[{'' if tracker == 'none' else tracker}]",
    ]
    study = load_study(EXAMPLES / "digits.yaml", sets)
    folder = Path(tempfile.mkdtemp(prefix=f"{tracker}-", dir=root))
    os.environ.update(
        MLFLOW_TRACKING_URI=f"sqlite:///{folder}/mlflow.db",
        WANDB_MODE="offline",
        WANDB_DIR=str(folder / "wandb"),
        WANDB_SILENT="true",
    )
    cwd = os.getcwd()
    os.chdir(folder)  # MLflow's artifacts land beside its store
    try:
        t0 = time.perf_counter()
        run_study(study, study_dir=EXAMPLES, storage=str(folder / "runs"), progress=False)
        return time.perf_counter() - t0
    finally:
        os.chdir(cwd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    init_ray(None, num_cpus=os.cpu_count(), dashboard=False)
    times: dict[str, list[float]] = {t: [] for t in TRACKERS}
    with tempfile.TemporaryDirectory() as root:
        one_run("none", 2, 1, Path(root))  # warm-up: worker start and imports count for none
        for r in range(args.repeats):
            for tracker in TRACKERS[r % len(TRACKERS) :] + TRACKERS[: r % len(TRACKERS)]:
                times[tracker].append(one_run(tracker, args.samples, args.epochs, Path(root)))
    base = statistics.median(times["none"])
    print(f"digits, {args.samples} trials x {args.epochs} epochs, {args.repeats} runs each")
    print(f"{'trackers':<12} {'median s':>9} {'ratio':>6}  runs")
    for tracker, values in times.items():
        med = statistics.median(values)
        runs = " ".join(f"{v:.1f}" for v in values)
        print(f"{tracker:<12} {med:>9.1f} {med / base:>6.2f}  {runs}")


if __name__ == "__main__":
    main()
