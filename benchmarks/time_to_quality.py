"""Time to quality on digits: tunepipe's playbook defaults vs full random search vs plain Ray Tune
ASHA vs Optuna (TPE + successive halving), same search space, same seeds, same max epochs.

"best val_loss" is the best epoch's, for every method. Each Ray method runs on a fresh Ray, as
each `tunepipe run` does; its start-up is timed apart, and so is the time its prestarted workers
take to import torch (tunepipe has the raylet preload it; in `tunepipe run` the sanity stage runs
meanwhile, and the Optuna process too has torch imported before its clock starts). The "cold" row
starts the search the moment Ray is up and waits for those imports inside its wall. tunepipe's
sanity stage is timed apart; its HTML report is not in its wall. Every wall includes reading the
data; Optuna runs with no Ray beside it.

Run: python benchmarks/time_to_quality.py [--seeds 0 1 2] [--trials 32] [--max-epochs 20]
Needs the bench extra (optuna): pip install -e '.[bench]'
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SPACE = {
    "lr": {"type": "loguniform", "low": 1e-4, "high": 1e-1},
    "hidden_width": {"type": "choice", "values": [64, 128, 256]},
    "batch_size": {"type": "choice", "values": [16, 32, 64, 128]},
    "dropout": {"type": "uniform", "low": 0.0, "high": 0.3},
    "optimizer": {"type": "choice", "values": ["adam", "sgd"]},
}


def study(seed: int, trials: int, max_epochs: int, name: str, **over):
    from tunepipe.study import parse_study

    raw = {
        "name": name,
        "seed": seed,
        "data": {"source": "digits", "label": "label"},
        "model": {"kind": "mlp", "depth": 2},
        "search_space": SPACE,
        "num_samples": trials,
        "scheduler": {"kind": "asha", "max_epochs": max_epochs},
        **over,
    }
    return parse_study(raw)


def full_budget(max_epochs: int) -> dict:
    """Study overrides for a random search at full budget: nothing pruned, no rules."""
    return {
        "scheduler": {"kind": "fifo", "max_epochs": max_epochs},
        "stopping": {"divergence": None, "overfitting": None, "plateau": None},
    }


def run_tunepipe(s, storage: str) -> tuple[float, int, float]:
    """(best val_loss, epochs spent, wall seconds) of a tunepipe study."""
    import pyarrow.parquet as pq
    import ray.tune  # noqa: F401  imported before the clock starts, as run_optuna's optuna is

    from tunepipe.engine.runner import run_study
    from tunepipe.report import write_report

    t0 = time.perf_counter()
    out = run_study(s, storage=storage, progress=False)
    wall = time.perf_counter() - t0
    # The study writes its HTML report at the end (matplotlib, ~2 s here); the other methods
    # write none, so its time is measured again and taken out of the comparison.
    t1 = time.perf_counter()
    write_report(out.run_dir)
    wall -= time.perf_counter() - t1
    epochs = pq.read_table(f"{out.run_dir}/history.parquet").num_rows
    return out.summary["best_val_loss"], epochs, wall


def run_plain_asha(s, storage: str) -> tuple[float, int, float]:
    """Ray Tune's ASHAScheduler with its defaults (max_t set to the same epoch budget)."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import BasicVariantGenerator

    from tunepipe.data import load_data
    from tunepipe.engine.space import to_tune_space
    from tunepipe.train.trainable import tune_trainable

    t0 = time.perf_counter()
    data = load_data(s.data, s.task, s.seed)
    grid = tune.Tuner(
        tune.with_parameters(tune_trainable, data=data, study=s),
        param_space=to_tune_space(s),
        tune_config=tune.TuneConfig(
            metric="val_loss",
            mode="min",
            num_samples=s.num_samples,
            scheduler=ASHAScheduler(max_t=s.scheduler.max_epochs),
            search_alg=BasicVariantGenerator(random_state=s.seed),
        ),
        run_config=tune.RunConfig(storage_path=storage, name="plain", verbose=0),
    ).fit()
    wall = time.perf_counter() - t0
    best, epochs = math.inf, 0
    for r in grid:
        df = r.metrics_dataframe
        if df is not None and "val_loss" in df:
            best = min(best, float(df["val_loss"].min()))
            epochs += len(df)
    return best, epochs, wall


def run_optuna(s) -> tuple[float, int, float]:
    """Optuna's TPE sampler with its successive-halving pruner, in-process, same trainable loop."""
    import optuna

    from tunepipe.data import load_data
    from tunepipe.train.loop import run_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    t0 = time.perf_counter()  # data loading counts, as it does in tunepipe's wall
    data = load_data(s.data, s.task, s.seed)
    spent = {"epochs": 0, "best": math.inf}

    def objective(trial: optuna.Trial) -> float:
        config = {
            "lr": trial.suggest_float("lr", 1e-4, 1e-1, log=True),
            "hidden_width": trial.suggest_categorical("hidden_width", [64, 128, 256]),
            "batch_size": trial.suggest_categorical("batch_size", [16, 32, 64, 128]),
            "dropout": trial.suggest_float("dropout", 0.0, 0.3),
            "optimizer": trial.suggest_categorical("optimizer", ["adam", "sgd"]),
        }
        best = [math.inf]

        def report(metrics: dict, _ckpt) -> None:
            spent["epochs"] += 1
            v = metrics["val_loss"]
            if math.isfinite(v):
                best[0] = min(best[0], v)
                spent["best"] = min(spent["best"], v)
            trial.report(v if math.isfinite(v) else 1e9, metrics["epoch"])
            if trial.should_prune():
                raise optuna.TrialPruned()

        run_trial(config, data, s, report)
        return best[0]

    sampler = optuna.samplers.TPESampler(seed=s.seed)
    opt = optuna.create_study(
        direction="minimize", sampler=sampler, pruner=optuna.pruners.SuccessiveHalvingPruner()
    )
    opt.optimize(objective, n_trials=s.num_samples)
    return spent["best"], spent["epochs"], time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--trials", type=int, default=32)
    ap.add_argument("--max-epochs", type=int, default=20)
    args = ap.parse_args()
    rows: dict[str, list[tuple[float, int, float]]] = {}
    apart: dict[str, list[float]] = {"start": [], "warm": [], "sanity": []}  # not in any wall
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            for name, fn in methods(seed, args.trials, args.max_epochs, tmp, apart).items():
                rows.setdefault(name, []).append(fn())
                print(f"seed {seed} {name}: {rows[name][-1]}", file=sys.stderr, flush=True)
    print_table(rows, args, apart)


def fresh_ray(apart: dict[str, list[float]], plain: bool = False, warm: bool = True) -> None:
    """A new Ray for each Ray method, as each `tunepipe run` starts its own; its start-up is timed
    into apart["start"]. `warm`: then wait until the workers Ray prestarted have imported torch
    (tunepipe has them preload it; apart["warm"]), as the sanity stage's time lets them in
    `tunepipe run`, and as the Optuna process has torch imported before its clock starts.
    `plain`: Ray's own defaults, for plain Ray Tune."""
    import logging

    import ray

    from tunepipe.engine.session import init_ray, use_token_auth

    ray.shutdown()
    t0 = time.perf_counter()
    if plain:
        use_token_auth()
        ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    else:
        init_ray(None, dashboard=False)
    apart["start"].append(time.perf_counter() - t0)
    if warm and not plain:
        t0 = time.perf_counter()
        wait_until_workers_idle(int(ray.cluster_resources().get("CPU", 1)))
        apart["warm"].append(time.perf_counter() - t0)


def wait_until_workers_idle(n: int, settle_s: float = 0.5, timeout_s: float = 60) -> None:
    """Until this process's Ray has n idle workers ("ray::IDLE") that used no CPU for settle_s:
    done importing what the raylet preloads."""
    import psutil

    me, last, quiet_since = psutil.Process(), None, None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        cpu = []
        for p in me.children(recursive=True):
            try:
                if "ray::IDLE" in " ".join(p.cmdline()):
                    cpu.append(sum(p.cpu_times()[:2]))
            except psutil.Error:
                continue
        total = sum(cpu) if len(cpu) >= n else None
        if total is not None and last is not None and total - last < 0.01:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= settle_s:
                return
        else:
            quiet_since = None
        last = total
        time.sleep(0.1)
    raise TimeoutError(f"Ray's {n} prestarted workers were not idle within {timeout_s} s")


def time_sanity(s) -> float:
    """Seconds of tunepipe's sanity stage (data checks, initial loss, overfit, LR range test)."""
    from tunepipe.data import load_data
    from tunepipe.playbook.sanity import run_sanity

    t0 = time.perf_counter()
    result = run_sanity(s, load_data(s.data, s.task, s.seed))
    assert result.passed, [c for c in result.checks if c.status == "fail"]
    return time.perf_counter() - t0


def methods(seed: int, n: int, e: int, tmp: str, apart: dict[str, list[float]]) -> dict:
    """The methods for one seed, as thunks (same seed, space and epoch budget).

    Each Ray method gets a fresh Ray, started apart. tunepipe's sanity stage is timed apart. The
    cold row starts the search the moment Ray is up, so it waits for the workers' imports itself:
    what `tunepipe run` would pay if its sanity stage took no time at all.
    """
    off = {"sanity": False}  # the search itself; the sanity stage is run and timed apart

    def tunepipe(name: str, warm: bool = True, **over):
        fresh_ray(apart, warm=warm)
        if name == "tp":
            apart["sanity"].append(time_sanity(study(seed, n, e, "s")))
        return run_tunepipe(study(seed, n, e, name, playbook=off, **over), tmp)

    def plain():
        fresh_ray(apart, plain=True)
        return run_plain_asha(study(seed, n, e, "p"), tmp)

    def optuna():
        import ray

        ray.shutdown()  # an Optuna user runs no Ray beside it
        return run_optuna(study(seed, n, e, "o"))

    return {
        "tunepipe (playbook defaults)": lambda: tunepipe("tp"),
        "tunepipe, cold workers": lambda: tunepipe("tpc", warm=False),
        "random search, full budget": lambda: tunepipe("rnd", **full_budget(e)),
        "plain Ray Tune ASHA (defaults)": plain,
        "Optuna TPE + successive halving": optuna,
    }


def print_table(rows: dict, args: argparse.Namespace, apart: dict[str, list[float]]) -> None:
    """Medians over seeds, and ratios two ways: of the medians, and the median of each seed's
    own ratio (paired: the same seed's split, sampled configs and trial seeds on both sides)."""
    med = {k: tuple(statistics.median(x[i] for x in v) for i in range(3)) for k, v in rows.items()}
    rnd, opt = rows["random search, full budget"], rows["Optuna TPE + successive halving"]
    ref, optuna_wall = med["random search, full budget"], med["Optuna TPE + successive halving"][2]

    def paired(v: list, base: list, i: int) -> float:
        return statistics.median(x[i] / y[i] for x, y in zip(v, base, strict=True))

    print(
        f"\ndigits MLP, {args.trials} trials, max {args.max_epochs} epochs, seeds {args.seeds};"
        " medians. A fresh Ray per Ray method; not in any wall (medians): its start-up"
        f" {statistics.median(apart['start']):.1f} s, then its workers' imports"
        f" {statistics.median(apart['warm']):.1f} s (the cold row waits for these itself)"
    )
    print(
        f"{'method':<34} {'best val_loss':>13} {'÷ random':>9} {'epochs':>7} {'% random':>9}"
        f" {'wall s':>7} {'÷ Optuna':>9}   paired: {'÷ random':>8} {'% epochs':>8} {'÷ Optuna':>8}"
    )
    for name, (loss, epochs, wall) in med.items():
        v = rows[name]
        print(
            f"{name:<34} {loss:13.4f} {loss / ref[0]:9.3f} {epochs:7.0f} "
            f"{100 * epochs / ref[1]:8.1f}% {wall:7.1f} {wall / optuna_wall:9.2f}   "
            f"        {paired(v, rnd, 0):8.3f} {100 * paired(v, rnd, 1):7.1f}% "
            f"{paired(v, opt, 2):8.2f}"
        )
    print(f"tunepipe's sanity stage, apart (median): {statistics.median(apart['sanity']):.1f} s")


if __name__ == "__main__":
    main()
