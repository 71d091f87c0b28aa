"""The search algorithm Tune runs: Ray's random/grid generator or Optuna's TPE / CMA-ES through
Ray's OptunaSearch, composed with the playbook's scheduler (docs/search.md).

What tunepipe adds to Ray's OptunaSearch (`PlaybookOptunaSearch`):
- the searcher is told how each trial really ended: a trial the scheduler pruned at a rung, or
  one that diverged, reaches Optuna as PRUNED (with its reported curve), not as COMPLETE with
  whatever its last value was; a finished trial is told its best value (the one results.parquet
  and the report rank by), not its last;
- a trial paused for a plateau LR decay and resumed is told once, under the configuration Optuna
  sampled (the decayed rate lives in Tune's copy of the config, not in Optuna's record);
- warm start: an earlier run's trials enter Optuna's study as finished trials, conditional
  settings included (Ray's `evaluated_rewards` refuses define-by-run spaces).
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from tunepipe.config import StudyConfig
from tunepipe_schedulers.search import ResumeFirstSearch, ResumeFirstSearchGenerator

PRUNED_REASONS = ("pruned", "diverged")  # stopped before showing what the configuration can do


def build_search(study: StudyConfig, scheduler: Any, warm: list[tuple[dict, float]] = ()) -> Any:
    """Tune's `search_alg` for the study; max_concurrent_trials held by either kind."""
    limit = study.budget.max_concurrent_trials
    actors = getattr(scheduler, "actors", None)  # PlaybookASHA's AllSlotsAtOnce (not PBT's)
    if actors is not None:
        actors.limit = limit or 0
        actors.one_at_a_time = study.search.kind in ("tpe", "cmaes")
    if study.search.kind not in ("tpe", "cmaes"):
        return ResumeFirstSearch(scheduler, random_state=study.seed, max_concurrent=limit or 0)
    searcher: Any = PlaybookOptunaSearch(
        space=define_by_run(study),
        sampler=_sampler(study),
        metric=study.metric,
        mode=study.mode,
        scheduler=scheduler,
        warm=list(warm),
        study_config=study,
    )
    if limit:
        searcher = ConcurrencyLimiter(searcher, max_concurrent=limit)
    return ResumeFirstSearchGenerator(searcher, scheduler)


def _sampler(study: StudyConfig) -> Any:
    import optuna

    kwargs: dict[str, Any] = {"seed": study.seed}
    if study.search.n_startup_trials is not None:
        kwargs["n_startup_trials"] = study.search.n_startup_trials
    if study.search.kind == "cmaes":
        return optuna.samplers.CmaEsSampler(**kwargs)
    return optuna.samplers.TPESampler(**kwargs)


def ordered_keys(study: StudyConfig) -> list[str]:
    """Search-space keys with every condition's parent before the settings that depend on it."""
    keys = list(study.search_space)
    plain = [k for k in keys if not getattr(study.search_space[k], "when", None)]
    return plain + [k for k in keys if k not in plain]


def condition_met(dom: Any, config: dict[str, Any]) -> bool:
    when = getattr(dom, "when", None) or {}
    return all(config.get(k) == v for k, v in when.items())


def define_by_run(study: StudyConfig) -> DefineByRun:
    return DefineByRun(study.search_space, ordered_keys(study))


class DefineByRun:
    """Optuna's define-by-run space: a setting whose `when` is unmet is not suggested at all, so
    the trial keeps that setting's default and the model learns nothing false about it. A class,
    not a closure: Tune pickles the searcher with its experiment state."""

    def __init__(self, space: dict[str, Any], keys: list[str]) -> None:
        self.space, self.keys = space, keys

    def __call__(self, trial: Any) -> dict[str, Any] | None:
        params: dict[str, Any] = {}
        constants: dict[str, Any] = {}
        for key in self.keys:
            dom = self.space[key]
            if not isinstance(dom, BaseModel):
                constants[key] = dom
            elif condition_met(dom, params):
                params[key] = suggest(trial, key, dom)
        return constants or None


def suggest(trial: Any, key: str, dom: Any) -> Any:
    """One Optuna suggestion for a study-file domain (Ray's bounds conventions kept)."""
    t = dom.type
    if t == "uniform":
        return trial.suggest_float(key, dom.low, dom.high)
    if t == "loguniform":
        return trial.suggest_float(key, dom.low, dom.high, log=True)
    if t == "quniform":
        return trial.suggest_float(key, dom.low, dom.high, step=dom.q)
    if t == "randint":  # Ray's randint excludes high
        return trial.suggest_int(key, dom.low, dom.high - 1)
    if t == "qrandint":  # Ray's qrandint includes high
        return trial.suggest_int(key, dom.low, dom.high, step=dom.q)
    if t == "lograndint":
        return trial.suggest_int(key, dom.low, dom.high - 1, log=True)
    if t == "choice":
        return trial.suggest_categorical(key, dom.values)
    raise ValueError(f"search_space.{key}: {t} domains can't be sampled by Optuna")


def distribution(dom: Any) -> Any:
    """The Optuna distribution `suggest` samples `dom` from (for warm-start trials)."""
    from optuna import distributions as d

    t = dom.type
    if t in ("uniform", "loguniform", "quniform"):
        step = dom.q if t == "quniform" else None
        return d.FloatDistribution(dom.low, dom.high, log=t == "loguniform", step=step)
    if t in ("randint", "lograndint"):
        return d.IntDistribution(dom.low, dom.high - 1, log=t == "lograndint")
    if t == "qrandint":
        return d.IntDistribution(dom.low, dom.high, step=dom.q)
    return d.CategoricalDistribution(dom.values)


class PlaybookOptunaSearch(OptunaSearch):
    """Ray's OptunaSearch, told the truth about how each trial ended (module docstring)."""

    def __init__(
        self, *args: Any, scheduler: Any, warm: list, study_config: StudyConfig, **kwargs: Any
    ) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)  # not a line per study and trial
        # Set before Ray's __init__, which builds the Optuna study (and adds the warm trials).
        self._scheduler = scheduler
        self._warm = warm
        self._domains = study_config.search_space
        self._best: dict[str, float] = {}
        self._steps: dict[str, set] = {}
        self.told: dict[str, tuple[str, float | None]] = {}  # trial_id -> (state, value)
        super().__init__(*args, **kwargs)

    def _setup_study(self, mode: Any) -> None:
        super()._setup_study(mode)
        self._add_warm_trials()

    def _add_warm_trials(self) -> None:
        import optuna

        for params, value in self._warm:
            dists = {k: distribution(self._domains[k]) for k in params}
            self._ot_study.add_trial(
                optuna.trial.create_trial(params=params, distributions=dists, value=value)
            )

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        value = result.get(self.metric)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return  # Optuna keeps finite intermediate values only
        best = self._best.get(trial_id)
        better = best is None or (value < best if self.mode == "min" else value > best)
        self._best[trial_id] = value if better else best
        step = result.get("epoch", result.get("training_iteration"))
        seen = self._steps.setdefault(trial_id, set())
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is not None and step not in seen:  # a resumed trial may repeat an epoch
            seen.add(step)
            ot_trial.report(value, step)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        import optuna

        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is None or trial_id in self._completed_trials:
            return
        if result:
            self.on_trial_result(trial_id, result)
        reason = _reason(self._scheduler, trial_id)
        best = self._best.get(trial_id)
        if error or (best is None and reason not in PRUNED_REASONS):
            state, value = optuna.trial.TrialState.FAIL, None
        elif reason in PRUNED_REASONS:
            state, value = optuna.trial.TrialState.PRUNED, None
        else:
            state, value = optuna.trial.TrialState.COMPLETE, best
        self._ot_study.tell(ot_trial, value, state=state)
        self._completed_trials.add(trial_id)
        self.told[trial_id] = (state.name, value)


def _reason(scheduler: Any, trial_id: str) -> str | None:
    record = getattr(scheduler, "decisions", {}).get(trial_id)
    reason = getattr(record, "reason", None)
    return str(reason) if reason is not None else None
