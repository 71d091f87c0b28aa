"""Trial overhead: N trivial trials (10 reports each), every runner its own whole process.

- tunepipe: `tunepipe run --fresh` on a study whose trainable is benchmarks/trivial.py;
- plain Ray Tune, reuse_actors=True (the fair baseline: what a user who read Tune's docs writes);
- plain Ray Tune with Ray's defaults (reuse_actors=False: a new actor per trial).

Each plain script is ray.init() + Tuner(...).fit(), as a user writes it. Whole-process walls,
medians over --repeats. Run inside a private network namespace:

    unshare -rn sh -c 'ip link set lo up && python benchmarks/trial_overhead.py --repeats 3'

Options: --trials 64 --repeats 1.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable

PLAIN = """
import sys
import ray
from ray import tune
sys.path.insert(0, {bench!r})
from trivial import train

ray.init(log_to_driver=False)
grid = tune.Tuner(
    train,
    param_space={{"x": tune.uniform(0, 1)}},
    tune_config=tune.TuneConfig(num_samples={n}, reuse_actors={reuse}),
    run_config=tune.RunConfig(storage_path={storage!r}, name="plain", verbose=0),
).fit()
if grid.errors or len(grid) != {n}:  # a failed trial is not a fast one
    sys.exit(f"{{len(grid.errors)}} of {{len(grid)}} trials failed: {{grid.errors[:1]}}")
"""


def commands(n: int, folder: Path) -> dict[str, list[str]]:
    study = folder / "study.yaml"
    study.write_text(
        yaml.safe_dump(
            {
                "name": "tp",
                "trainable": "trivial:train",
                "code_dir": str(ROOT / "benchmarks"),
                "num_samples": n,
                "search_space": {"x": {"type": "uniform", "low": 0, "high": 1}},
                "scheduler": {"kind": "fifo", "max_epochs": 10},
            }
        )
    )
    bench = str(ROOT / "benchmarks")

    def plain(reuse: bool) -> list[str]:
        code = PLAIN.format(bench=bench, n=n, reuse=reuse, storage=str(folder / f"p{reuse}"))
        return [PY, "-c", code]

    return {
        "tunepipe run": [
            PY,
            "-m",
            "tunepipe",
            "run",
            str(study),
            "--fresh",
            "--storage",
            str(folder / "tp"),
        ],  # fmt: skip
        "plain Ray Tune, reuse_actors=True": plain(True),
        "plain Ray Tune, Ray's defaults": plain(False),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--trials", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    env = {
        **os.environ,
        # The plain scripts' Ray workers import trivial.py from benchmarks/, as tunepipe's do
        # through the study's code_dir.
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT), str(ROOT / "benchmarks"), os.environ.get("PYTHONPATH", "")]
        ),
    }
    times: dict[str, list[float]] = {}
    for i in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            cmds = commands(args.trials, Path(tmp))
            names = list(cmds)
            for name in names[i % len(names) :] + names[: i % len(names)]:  # rotate the order
                t0 = time.perf_counter()
                done = subprocess.run(cmds[name], env=env, cwd=tmp, capture_output=True, text=True)
                if done.returncode != 0:
                    raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
                times.setdefault(name, []).append(time.perf_counter() - t0)
                print(f"{name}: {times[name][-1]:.1f} s", file=sys.stderr, flush=True)
    print(
        f"\n{args.trials} trivial trials (10 reports each), whole processes, "
        f"{args.repeats} repeat(s), medians (min–max):"
    )
    print(f"{'runner':<36} {'seconds':>8} {'spread':>13} {'trials/s':>9}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:<36} {med:8.1f} {min(ts):6.1f}–{max(ts):<6.1f} {args.trials / med:9.2f}")
    base = statistics.median(times["plain Ray Tune, reuse_actors=True"])
    ratio = statistics.median(times["tunepipe run"]) / base
    print(f"tunepipe ÷ plain (reuse_actors=True): {ratio:.2f}x wall")


if __name__ == "__main__":
    main()
