"""The non-tunepipe methods of time_to_quality.py, each run as its own process, as a user runs it.

    python benchmarks/ttq_methods.py {plain,optuna,random} STUDY.yaml OUT.json

Every method reads the same study file (tunepipe's data section, so the same split rows, and the
same search space, seed, trial count and epoch budget) and trains with tunepipe's loop
(`run_trial`), so the methods differ only in how they schedule trials and what that costs. Each
writes {"best_val_loss", "epochs", "rows"} to OUT.json; "rows" fingerprints the split rows.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def rows_fingerprint(data) -> str:
    """sha256 of the train/validation/test arrays: the methods must see the same rows."""
    h = hashlib.sha256()
    for split in (data.train, data.val, data.test):
        if split is not None:
            h.update(split.x.tobytes())
            h.update(split.y.tobytes())
    return h.hexdigest()[:16]


def load(study_path: str):
    from tunepipe.data import load_data
    from tunepipe.study import load_study

    s = load_study(study_path)
    return s, load_data(s.data, s.task, s.seed, base_dir=Path(study_path).parent)


def plain(study_path: str) -> dict:
    """A plain Ray Tune script: ray.init() with its defaults (dashboard included), Ray's ASHA
    with its defaults (grace 1, reduction factor 4) up to the same epochs, reuse_actors=True,
    1 CPU per trial, and the same sampled configurations as tunepipe (same generator, seed)."""
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import BasicVariantGenerator

    from tunepipe.engine.space import to_tune_space
    from tunepipe.train.trainable import tune_trainable

    s, data = load(study_path)
    ray.init(log_to_driver=False)
    grid = tune.Tuner(
        tune.with_resources(tune.with_parameters(tune_trainable, data=data, study=s), {"cpu": 1}),
        param_space=to_tune_space(s),
        tune_config=tune.TuneConfig(
            metric="val_loss",
            mode="min",
            num_samples=s.num_samples,
            scheduler=ASHAScheduler(max_t=s.scheduler.max_epochs),
            search_alg=BasicVariantGenerator(random_state=s.seed),
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(storage_path=str(Path(study_path).parent / "plain"), verbose=0),
    ).fit()
    best, epochs = math.inf, 0
    for r in grid:
        df = r.metrics_dataframe
        if df is not None and "val_loss" in df:
            best = min(best, float(df["val_loss"].min()))
            epochs += len(df)
    return {"best_val_loss": best, "epochs": epochs, "rows": rows_fingerprint(data)}


def optuna(study_path: str) -> dict:
    """Optuna TPE + successive halving, n_jobs=2 (threads), one torch thread each."""
    import optuna as opt
    import torch

    from tunepipe.train.loop import run_trial

    s, data = load(study_path)
    torch.set_num_threads(1)
    opt.logging.set_verbosity(opt.logging.WARNING)
    spent = {"epochs": 0, "best": math.inf}

    def objective(trial: opt.Trial) -> float:
        best = [math.inf]

        def report(metrics: dict, _ckpt) -> None:
            spent["epochs"] += 1
            v = metrics["val_loss"]
            if math.isfinite(v):
                best[0] = min(best[0], v)
                spent["best"] = min(spent["best"], v)
            trial.report(v if math.isfinite(v) else 1e9, metrics["epoch"])
            if trial.should_prune():
                raise opt.TrialPruned()

        run_trial(suggest(trial, s), data, s, report)
        return best[0]

    study = opt.create_study(
        direction="minimize",
        sampler=opt.samplers.TPESampler(seed=s.seed),
        pruner=opt.pruners.SuccessiveHalvingPruner(),
    )
    study.optimize(objective, n_trials=s.num_samples, n_jobs=2)
    return {
        "best_val_loss": spent["best"],
        "epochs": spent["epochs"],
        "rows": rows_fingerprint(data),
    }


def suggest(trial, s) -> dict:
    """The study's search space as Optuna suggestions (the domains digits uses)."""
    config = {}
    for name, d in s.search_space.items():
        if d.type == "choice":
            config[name] = trial.suggest_categorical(name, list(d.values))
        else:
            config[name] = trial.suggest_float(name, d.low, d.high, log=d.type == "loguniform")
    return config


def random(study_path: str) -> dict:
    """Full random search: tunepipe's configurations, every trial to max_epochs, no pruning,
    two worker processes with one torch thread each, no Ray cluster."""
    from concurrent.futures import ProcessPoolExecutor

    s, data = load(study_path)
    configs = sampled_configs(s)
    with ProcessPoolExecutor(2, initializer=_worker_init, initargs=(study_path,)) as pool:
        runs = list(pool.map(_full_trial, configs))
    return {
        "best_val_loss": min(b for b, _ in runs),
        "epochs": sum(e for _, e in runs),
        "rows": rows_fingerprint(data),
    }


def sampled_configs(s) -> list[dict]:
    """The configurations Tune's BasicVariantGenerator(random_state=seed) gives tunepipe's
    trials, in order: one generate_variants draw per sample from one shared generator."""
    from ray.tune.search.sample import _BackwardsCompatibleNumpyRng
    from ray.tune.search.variant_generator import generate_variants

    from tunepipe.engine.space import to_tune_space

    rng = _BackwardsCompatibleNumpyRng(s.seed)
    space = {"config": to_tune_space(s)}
    return [
        next(generate_variants(space, constant_grid_search=False, random_state=rng))[1]["config"]
        for _ in range(s.num_samples)
    ]


_WORKER: dict = {}


def _worker_init(study_path: str) -> None:
    import torch

    torch.set_num_threads(1)
    _WORKER["study"], _WORKER["data"] = load(study_path)  # once per worker, not per trial


def _full_trial(config: dict) -> tuple[float, int]:
    from tunepipe.train.loop import run_trial

    s, data = _WORKER["study"], _WORKER["data"]
    seen: list[float] = []
    run_trial(config, data, s, lambda m, _c: seen.append(m["val_loss"]))
    finite = [v for v in seen if math.isfinite(v)]
    return (min(finite) if finite else math.inf), len(seen)


if __name__ == "__main__":
    method, study_file, out = sys.argv[1:4]
    result = {"plain": plain, "optuna": optuna, "random": random}[method](study_file)
    Path(out).write_text(json.dumps(result))
