"""Time to quality on digits, as a user pays it: every method is its own process, timed whole.

Methods (same study file: examples/digits.yaml with --trials samples and the seed, so the same
split rows, space, epoch budget and, for the Ray methods, the same sampled configurations):

- tunepipe, cold: `tunepipe run --fresh` (Ray's start, imports, sanity stage, report included);
- tunepipe, warm: `tunepipe run` after `tunepipe up` and a first, untimed 2-trial study of
  another seed, once the workers that study asked for have imported torch (up, that study, the
  wait and down are outside the wall);
- tunepipe with Optuna's TPE as its searcher (`--set search.kind=tpe`, docs/search.md), warm;
- the same with ASHA at Optuna's successive-halving rungs (grace 1, reduction factor 4), warm:
  the Optuna row's pruning budget, so the two differ in sampler, rules and scheduling only;
- the same with Optuna's promotion rule too (`scheduler.rung_rule=rank`), warm;
- a plain Ray Tune script: ray.init() defaults, ASHA defaults, reuse_actors=True, 1 CPU a trial;
- Optuna TPE + successive halving, n_jobs=2, one torch thread each;
- full random search: every trial to max epochs, 2 processes, no Ray.

Every tunepipe run starts with an empty sanity cache (it pays its sanity stage, as a study run
for the first time does). The method order rotates per seed; walls are medians over seeds with
min–max spread; tunepipe's phases (summary.json) are printed apart. ASHA's defaults were
chosen on seeds 0–2, so the default seeds are 3, 4 and 5. Run inside a private network namespace:

    unshare -rn sh -c 'ip link set lo up && python benchmarks/time_to_quality.py'

Options: --seeds 3 4 5 --trials 32 --max-epochs 20 --methods NAME... (see METHODS) --repeats 1.
Adding a method: one Method in METHODS.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
PY = sys.executable


@dataclass
class Method:
    """One way to tune: a command line timed as a whole process and a reader of its results."""

    argv: Callable[[Path, Path], list[str]]  # (study file, its folder) -> the command
    read: Callable[[Path], dict]  # the folder -> {best_val_loss, epochs, rows, [phases]}
    before: list[str] = field(default_factory=list)  # run untimed before it (tunepipe up)
    after: list[str] = field(default_factory=list)  # run untimed after it (tunepipe down)
    # run untimed after `before`: (study file, its folder) -> a command (a first study)
    prime: Callable[[Path, Path], list[str]] | None = None


def _tunepipe_argv(*extra: str) -> Callable[[Path, Path], list[str]]:
    return lambda study, folder: [
        PY, "-m", "tunepipe", "run", str(study), "--storage", str(folder / "runs"), *extra
    ]  # fmt: skip


def _read_tunepipe(folder: Path) -> dict:
    import pyarrow.parquet as pq

    run = next((folder / "runs").iterdir())
    summary = json.loads((run / "summary.json").read_text())
    return {
        "best_val_loss": summary["best_val_loss"],
        "epochs": pq.read_table(run / "history.parquet").num_rows,
        "phases": summary.get("phases", {}),
        "rows": _rows(folder / "study.yaml"),
    }


def _script(name: str) -> Method:
    return Method(
        argv=lambda study, folder: [
            PY,
            str(ROOT / "benchmarks" / "ttq_methods.py"),
            name,
            str(study),
            str(folder / "out.json"),
        ],  # fmt: skip
        read=lambda folder: json.loads((folder / "out.json").read_text()),
    )


TP = [PY, "-m", "tunepipe"]
OPTUNA_RUNGS = ("search.kind=tpe", "scheduler.grace_period=1", "scheduler.reduction_factor=4")


def _warm(*overrides: str) -> Method:
    """`tunepipe run --set OVERRIDE...` on the warm Ray (`tunepipe up` before, `down` after), as
    the second study after `up`: a user's are mostly later ones, and Ray prestarts workers for
    the first job only (tunepipe asks for more at each study's end, engine/ray_private.py). The
    first, untimed, is a 2-trial study of another seed (its sanity result is not the timed
    one's); the timed one starts once the workers it left have imported torch, as `up` waits
    for its own (a study started at once shares the CPUs with those imports: docs/speed.md)."""
    sets = [arg for o in overrides for arg in ("--set", o)]
    prime = ("--set", "seed=1000", "--set", "num_samples=2")

    def first(study: Path, folder: Path) -> list[str]:
        return [*TP, "run", str(study), "--storage", str(folder / "prime"), *sets, *prime]

    return Method(
        _tunepipe_argv(*sets), _read_tunepipe, before=[*TP, "up"], after=[*TP, "down"], prime=first
    )


METHODS: dict[str, Method] = {
    "tunepipe run (cold)": Method(_tunepipe_argv("--fresh"), _read_tunepipe),
    "tunepipe run (warm: tunepipe up)": _warm(),
    "tunepipe run, search tpe (warm)": _warm("search.kind=tpe"),
    # The same sampler family and the same rungs as the Optuna row below: Optuna's
    # SuccessiveHalvingPruner() defaults to min_resource 1 ("auto" at 20 epochs) and reduction
    # factor 4, so rungs at epochs 1, 4 and 16; the comparison then differs in the sampler's
    # implementation, the playbook's rules and the scheduling, not in the epochs pruning spends.
    "tunepipe run, search tpe, Optuna SH's rungs (warm)": _warm(*OPTUNA_RUNGS),
    # ... and with the rank rule at the rungs (top 1/rf of the rung, itself included), the rule
    # Optuna's pruner applies; Ray's percentile rule lets more early arrivals through.
    "tunepipe run, search tpe, Optuna SH's rungs and rule (warm)": _warm(
        *OPTUNA_RUNGS, "scheduler.rung_rule=rank"
    ),
    "plain Ray Tune script": _script("plain"),
    "Optuna TPE + SH, 2 workers": _script("optuna"),
    "random search, full budget": _script("random"),
}


def _settle_warm_ray() -> None:
    """Wait until the warm Ray's idle workers have gone quiet (tunepipe.engine.warm.settled)."""
    from tunepipe.engine.warm import current, settled

    holder = current()
    if holder is None or settled(holder.pid) is None:
        raise RuntimeError("the warm Ray's workers did not settle within a minute")


def _rows(study: Path) -> str:
    """tunepipe's split rows, read as `tunepipe run` reads them (the same load_data call)."""
    from ttq_methods import load, rows_fingerprint

    return rows_fingerprint(load(str(study))[1])


def write_study(folder: Path, seed: int, trials: int, max_epochs: int) -> Path:
    """examples/digits.yaml with the benchmark's seed, trial count and epoch budget."""
    raw = yaml.safe_load((ROOT / "examples" / "digits.yaml").read_text())
    raw.update(seed=seed, num_samples=trials, storage=str(folder / "runs"))
    raw["scheduler"]["max_epochs"] = max_epochs
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def run_method(method: Method, folder: Path, seed: int, args: argparse.Namespace) -> dict:
    """The method's whole-process wall and results, in a folder of its own."""
    study = write_study(folder, seed, args.trials, args.max_epochs)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        # Every tunepipe run pays its sanity stage: none reuses another method's (or an earlier
        # benchmark's) result, so no wall depends on the order the methods ran in.
        "TUNEPIPE_CACHE": str(folder / "cache"),
    }

    def call(cmd: list[str]) -> subprocess.CompletedProcess:
        done = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}"
            )
        return done

    if method.before:
        call(method.before)
    try:
        if method.prime is not None:
            call(method.prime(study, folder))
            _settle_warm_ray()
        t0 = time.perf_counter()
        call(method.argv(study, folder))
        wall = time.perf_counter() - t0
    finally:
        if method.after:
            call(method.after)
    return {**method.read(folder), "wall": wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[3, 4, 5])
    ap.add_argument("--trials", type=int, default=32)
    ap.add_argument("--max-epochs", type=int, default=20)
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="runs of every method per seed; a seed's value is the median of its runs (Optuna's "
        "two threads sample in a different order every run: its epochs moved 76-163 per seed)",
    )
    args = ap.parse_args()
    if args.repeats < 1:
        ap.error(f"--repeats must be at least 1, not {args.repeats}")
    runs: dict[str, dict[int, list[dict]]] = {name: {} for name in args.methods}
    for i, seed in enumerate(args.seeds):
        for rep in range(args.repeats):
            k = (i + rep) % len(args.methods)
            order = args.methods[k:] + args.methods[:k]
            with tempfile.TemporaryDirectory() as tmp:
                for j, name in enumerate(order):
                    r = run_method(METHODS[name], Path(tmp) / f"m{j}", seed, args)
                    runs[name].setdefault(seed, []).append(r)
                    print(f"seed {seed} {name}: {r}", file=sys.stderr, flush=True)
    results = {name: {s: _median_run(rs) for s, rs in per.items()} for name, per in runs.items()}
    for seed in args.seeds:
        rows = {r[seed]["rows"] for r in results.values()}
        if len(rows) != 1:
            raise SystemExit(f"seed {seed}: the methods saw different split rows: {rows}")
    print_table(results, args)


def _median_run(rs: list[dict]) -> dict:
    """One seed's runs of a method as one: the median of each number (phases included)."""
    if len(rs) == 1:
        return rs[0]
    if len({r["rows"] for r in rs}) != 1:
        raise SystemExit(f"one method saw different split rows across repeats: {rs}")
    out = dict(rs[0])
    for key in ("wall", "best_val_loss", "epochs"):
        out[key] = statistics.median(r[key] for r in rs)
    phases = [r.get("phases") or {} for r in rs]
    out["phases"] = {k: statistics.median(p.get(k, 0.0) for p in phases) for k in phases[0]}
    return out


def print_table(results: dict[str, dict[int, dict]], args: argparse.Namespace) -> None:
    """Medians over seeds (spread min–max), ratios to Optuna's median wall and paired per seed."""
    names = list(results)
    opt = results.get("Optuna TPE + SH, 2 workers")
    plain = results.get("plain Ray Tune script")
    opt_wall = statistics.median(r["wall"] for r in opt.values()) if opt else math.nan
    print(
        f"\ndigits MLP (examples/digits.yaml), {args.trials} trials, max {args.max_epochs} epochs,"
        f" seeds {args.seeds}; whole-process walls; the same split rows for every method"
    )
    print(
        f"{'method':<34} {'best val_loss':>13} {'epochs':>7} {'wall s':>7} {'spread s':>12}"
        f" {'÷ Optuna':>9} {'÷ plain':>8}  val_loss ≤ plain"
    )
    for name in names:
        per = results[name]
        walls = [r["wall"] for r in per.values()]
        wall = statistics.median(walls)
        vs_plain = _paired(per, plain, "wall") if plain else math.nan
        better = (
            f"{sum(per[s]['best_val_loss'] <= plain[s]['best_val_loss'] for s in per)}/{len(per)}"
            if plain
            else "-"
        )
        print(
            f"{name:<34} {statistics.median(r['best_val_loss'] for r in per.values()):13.4f}"
            f" {statistics.median(r['epochs'] for r in per.values()):7.0f} {wall:7.1f}"
            f" {min(walls):5.1f}–{max(walls):<5.1f} {wall / opt_wall:9.2f} {vs_plain:8.2f}"
            f"  {better} seeds"
        )
    print_phases(results)


def _paired(per: dict[int, dict], base: dict[int, dict], key: str) -> float:
    return statistics.median(per[s][key] / base[s][key] for s in per)


def print_phases(results: dict[str, dict[int, dict]]) -> None:
    """tunepipe's phases from summary.json, medians over seeds (they add up to its wall)."""
    for name, per in results.items():
        phases = [r["phases"] for r in per.values() if r.get("phases")]
        if not phases:
            continue
        keys = list(dict.fromkeys(k for p in phases for k in p))
        med = {k: statistics.median(p.get(k, 0.0) for p in phases) for k in keys}
        print(f"{name} phases (s): " + ", ".join(f"{k} {v:.2f}" for k, v in med.items()))


if __name__ == "__main__":
    main()
