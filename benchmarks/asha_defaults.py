"""Which ASHA grace period and reduction factor make good defaults: replay recorded digits curves.

Records every epoch of a full-budget random search on digits (the same 32 trials, space and seeds
as benchmarks/time_to_quality.py), then replays those curves through PlaybookASHA with the playbook
rules (tunepipe_schedulers.simulate, no Ray) for several (grace_period, reduction_factor), two
trials at a time as on this machine, in six arrival orders per seed. It prints, per setting, the
epochs spent and the best val_loss found relative to the full search's (1.000 = found its best),
both as medians over the orders, per seed. A decayed trial's recorded curve cannot change, so a
replay counts decays but reads the same curve.

Run: python benchmarks/asha_defaults.py [--seeds 0 1 2] [--trials 32] [--max-epochs 20]
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

# (grace period, reduction factor, what the rungs compare: each trial's latest report, as Ray's
# ASHA does, or its best validation loss so far, the best-epoch checkpoint tunepipe keeps;
# the promotion rule: Ray's percentile of earlier arrivals, or rank in the rung, itself included)
SETTINGS = [
    (2, 3, "latest", "percentile"), (1, 3, "latest", "percentile"),
    (1, 4, "latest", "percentile"), (2, 4, "latest", "percentile"),
    (1, 2.5, "latest", "percentile"), (1, 3, "best", "percentile"),
    (1, 4, "best", "percentile"), (2, 3, "best", "percentile"), (2, 4, "best", "percentile"),
    (2, 5, "latest", "percentile"), (2, 5, "best", "percentile"), (3, 3, "latest", "percentile"),
    (2, 3, "latest", "rank"), (1, 3, "latest", "rank"), (1, 4, "latest", "rank"),
    (2, 4, "latest", "rank"), (1, 2.5, "latest", "rank"), (2, 3, "best", "rank"),
    (1, 4, "best", "rank"),
]  # fmt: skip


def digits_study(seed: int, trials: int, max_epochs: int, name: str, **over: object):
    """examples/digits.yaml with the seed, trial count and epoch budget (time_to_quality's)."""
    import yaml

    from tunepipe.study import parse_study

    raw = yaml.safe_load((ROOT / "examples" / "digits.yaml").read_text())
    raw.update(seed=seed, num_samples=trials, name=name, **over)
    raw["scheduler"] = {**raw["scheduler"], "max_epochs": max_epochs}
    return parse_study(raw)


def record(seed: int, trials: int, max_epochs: int, storage: str) -> str:
    """A full-budget random search's history.parquet: every trial runs max_epochs (FIFO, no
    playbook rule, no sanity stage), with the configurations tunepipe samples for the seed."""
    from tunepipe.engine.runner import run_study

    s = digits_study(
        seed, trials, max_epochs, f"rnd{seed}",
        playbook={"sanity": False},
        scheduler={"kind": "fifo", "max_epochs": max_epochs},
        stopping={"divergence": None, "overfitting": None, "plateau": None},
    )  # fmt: skip
    return f"{run_study(s, storage=storage, progress=False).run_dir}/history.parquet"


def replay(
    curves: dict,
    seed: int,
    trials: int,
    max_epochs: int,
    grace: int,
    rf: float,
    rung: str,
    rule: str = "percentile",
) -> list:
    """(best ÷ full search's best, epochs) for six arrival orders near the trials' id order."""
    from tunepipe.data import load_data
    from tunepipe.engine.schedule import build_judge
    from tunepipe_schedulers.ray_asha import PlaybookASHA
    from tunepipe_schedulers.simulate import simulate

    s = digits_study(seed, trials, max_epochs, "replay")
    data = load_data(s.data, s.task, s.seed)
    ref = min(v for c in curves.values() for v in c["val_loss"] if not math.isnan(v))
    ids, out = sorted(curves), []
    for k in range(6):  # Tune starts trials in id order; which finishes first varies
        rng = random.Random(k)
        order = ids if k == 0 else sorted(ids, key=lambda t: ids.index(t) + rng.uniform(-3, 3))
        result = simulate(
            {t: curves[t] for t in order},
            lambda: PlaybookASHA(
                judge=build_judge(s, data),
                metric="val_loss",
                mode="min",
                max_t=max_epochs,
                grace_period=grace,
                reduction_factor=rf,
                rung_on_best=rung == "best",
                rung_rule=rule,
            ),  # fmt: skip
            concurrency=2,
        )
        best = min(min(curves[t]["val_loss"][: o.epochs]) for t, o in result.outcomes.items())
        out.append((best / ref, result.total_epochs))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--trials", type=int, default=32)
    ap.add_argument("--max-epochs", type=int, default=20)
    args = ap.parse_args()
    from tunepipe.engine.session import init_ray
    from tunepipe_schedulers.simulate import read_history

    init_ray(None, dashboard=False)
    with tempfile.TemporaryDirectory() as tmp:
        curves = {s: read_history(record(s, args.trials, args.max_epochs, tmp)) for s in args.seeds}
    full = args.trials * args.max_epochs
    print(f"\ndigits, {args.trials} trials, max {args.max_epochs} epochs ({full} at full budget);"
          " medians over 6 arrival orders: best ÷ full search's best, epochs")  # fmt: skip
    print(f"{'grace':>5} {'rf':>4} {'rungs':>6} {'rule':>10} "
          + " ".join(f"{'seed ' + str(s):>16}" for s in args.seeds))  # fmt: skip
    for grace, rf, rung, rule in SETTINGS:
        cells = []
        for s in args.seeds:
            runs = replay(curves[s], s, args.trials, args.max_epochs, grace, rf, rung, rule)
            ratio = statistics.median(r for r, _ in runs)
            epochs = statistics.median(e for _, e in runs)
            cells.append(f"{ratio:7.3f} {epochs:6.0f} ep")
        print(f"{grace:>5} {rf:>4} {rung:>6} {rule:>10} " + " ".join(f"{c:>16}" for c in cells))


if __name__ == "__main__":
    main()
