"""PlaybookASHA: Ray Tune's ASHA, asked second; the playbook rules are asked first.

Construction (what the engine does)::

    from tunepipe_schedulers.judge import MetricKeys, PlaybookJudge
    from tunepipe_schedulers.rules import DivergenceRule, OverfittingRule, PlateauRule
    from tunepipe_schedulers.ray_asha import PlaybookASHA

    judge = PlaybookJudge(DivergenceRule(k=10), OverfittingRule(patience=10), PlateauRule(),
                          keys=MetricKeys(val_loss="val_loss", train_loss="train_loss", lr="lr"),
                          mode="min", initial_loss=math.log(n_classes))
    scheduler = PlaybookASHA(judge=judge, metric="val_loss", mode="min", max_t=max_epochs,
                             grace_period=1, reduction_factor=4, lr_config_key="lr")
    tune.Tuner(trainable, param_space=space,
               tune_config=tune.TuneConfig(scheduler=scheduler, num_samples=n))  # no metric/mode
                                                                                # here: given above
After (or during) ``tuner.fit()`` read ``scheduler.decisions``:
``{trial_id: StopRecord(reason: StopReason, detail: str, best_epoch: int | None)}`` for every trial
the scheduler ended (diverged/overfitting/plateau from the rules, pruned at a rung, completed at
``max_t``, error). A trial that ended without a record ran its trainable to the end: completed.
``scheduler.judge.state_dict(trial_id)`` is the trial's rule state and decision history (a plain
dict), ``scheduler.judge.lr_decays(trial_id)`` its number of LR decays.

Plateau decay (P5, L1): the trial's config gets ``lr_config_key`` × factor, then the scheduler
returns PAUSE, so Ray checkpoints and pauses it; `choose_trial_to_run` resumes decayed trials
before starting new ones. The trainable must therefore (1) report a checkpoint it can restore
from (function trainables: with every report), and (2) after loading the optimizer's state, set
each param group's ``lr`` from ``config`` again: ``optimizer.load_state_dict`` restores the old lr.
"""

from __future__ import annotations

import copy
import logging
import math
from typing import Any, NamedTuple

from ray.tune.experiment import Trial
from ray.tune.schedulers.async_hyperband import AsyncHyperBandScheduler, _Bracket
from ray.tune.schedulers.trial_scheduler import TrialScheduler

from tunepipe_schedulers.actors import AllSlotsAtOnce
from tunepipe_schedulers.cutoffs import SortedRung
from tunepipe_schedulers.judge import PlaybookJudge
from tunepipe_schedulers.reasons import StopReason
from tunepipe_schedulers.rules import DECAY_LR, STOP, as_loss

logger = logging.getLogger(__name__)


class StopRecord(NamedTuple):
    """Why the scheduler ended a trial; `decisions[trial_id]`."""

    reason: StopReason
    detail: str
    best_epoch: int | None


RUNG_RULES = ("percentile", "rank")


class _IncrementalBracket(_Bracket):
    """Ray's bracket, with rungs that keep their rewards sorted, and one of two promotion rules:

    - ``percentile`` (Ray's): a trial goes on if its reward reaches the (1 - 1/rf) percentile of
      the trials recorded at the rung before it; the first to arrive always goes on, and early
      arrivals are judged against few, interpolated, values.
    - ``rank`` (the ASHA paper's "top 1/rf of the rung", as Optuna's successive halving does it):
      the trial is recorded first and goes on only if it ranks in the top 1/rf of everything at
      the rung, itself included, and at least as the best; until rf trials have arrived that
      means the best so far.
    """

    def __init__(self, *args: Any, rule: str = "percentile", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if rule not in RUNG_RULES:
            raise ValueError(f"rung_rule must be one of {RUNG_RULES}, not {rule!r}")
        self.rule = rule
        self._rungs = [(milestone, SortedRung(rec)) for milestone, rec in self._rungs]
        self._q = (1 - 1 / self.rf) * 100  # Ray's percentile: keep the top 1/rf

    def cutoff(self, recorded: SortedRung) -> float | None:  # type: ignore[override]
        return recorded.percentile(self._q)

    def on_result(self, trial: Trial, cur_iter: int, cur_rew: float | None) -> str:
        if self.rule == "percentile":
            return super().on_result(trial, cur_iter, cur_rew)
        for milestone, recorded in self._rungs:  # Ray's loop, with the rank rule
            if cur_iter >= milestone and trial.trial_id in recorded and not self._stop_last_trials:
                break
            if cur_iter < milestone or trial.trial_id in recorded:
                continue
            if cur_rew is None:
                logger.warning("Reward attribute is None! Consider reporting a different field.")
                return TrialScheduler.CONTINUE
            recorded[trial.trial_id] = cur_rew
            return (
                TrialScheduler.CONTINUE
                if recorded.in_top(cur_rew, self.rf)
                else TrialScheduler.STOP
            )
        return TrialScheduler.CONTINUE


class PlaybookASHA(AsyncHyperBandScheduler):
    """Async successive halving (Li et al. 2018, arXiv:1810.05934) behind the playbook rules.

    Args:
        judge: the playbook rules; default `PlaybookJudge()` (val_loss, train_loss, lr; "min").
        lr_config_key: the config entry a plateau decay scales.
        metric, mode, time_attr, max_t, grace_period, reduction_factor, brackets,
            stop_last_trials: as in Ray's `AsyncHyperBandScheduler`.
        rung_on_best: rungs compare each trial's best validation loss so far, not its report.
        rung_rule: "percentile" (Ray's promotion rule) or "rank" (top 1/rf of the rung, the
            trial itself included; see `_IncrementalBracket`).
    """

    def __init__(
        self,
        judge: PlaybookJudge | None = None,
        lr_config_key: str = "lr",
        time_attr: str = "training_iteration",
        metric: str | None = None,
        mode: str | None = None,
        max_t: int = 100,
        grace_period: int = 1,
        reduction_factor: float = 4,
        brackets: int = 1,
        stop_last_trials: bool = True,
        rung_on_best: bool = False,
        rung_rule: str = "percentile",
    ) -> None:
        super().__init__(
            time_attr, metric, mode, max_t, grace_period, reduction_factor, brackets,
            stop_last_trials,
        )  # fmt: skip
        self._brackets = [
            _IncrementalBracket(
                grace_period, max_t, reduction_factor, s, stop_last_trials, rule=rung_rule
            )
            for s in range(brackets)
        ]
        self.judge = judge if judge is not None else PlaybookJudge()
        self.rung_on_best = rung_on_best
        self.lr_config_key = self.judge.lr_key = lr_config_key
        self.decisions: dict[str, StopRecord] = {}
        self._resume_first: set[str] = set()  # decayed trials, paused until resumed
        self.actors = AllSlotsAtOnce()  # every slot's actor at once under a searcher

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        super().on_trial_add(tune_controller, trial)
        if not hasattr(self, "actors"):  # pickled by a tunepipe without it (a resumed run)
            self.actors = AllSlotsAtOnce()
        self.actors.on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict) -> str:
        """Rules first (a rule stop wins), then Ray's ASHA; a plateau decay pauses the trial."""
        self._resume_first.discard(trial.trial_id)
        self._forget_retried_error(trial.trial_id)
        self.actors.on_trial_result(tune_controller)
        epoch = result.get(self._time_attr)
        if epoch is None:
            return super().on_trial_result(tune_controller, trial, result)
        can_decay = self.lr_config_key in trial.config
        decision = self.judge.on_report(trial.trial_id, int(epoch), result, can_decay=can_decay)
        if decision.action == STOP:
            self._num_stopped += 1
            self._record(trial, decision.reason, decision.detail, decision.best_epoch)
            return TrialScheduler.STOP
        action = super().on_trial_result(tune_controller, trial, self._rung_result(trial, result))
        if action == TrialScheduler.STOP:
            done = epoch >= self._max_t and self._stop_last_trials
            reason = StopReason.COMPLETED if done else StopReason.PRUNED
            detail = f"reached max_t={self._max_t}" if done else f"below rung cutoff at {epoch}"
            self._record(trial, reason, detail, decision.best_epoch)
            return action
        if decision.action == DECAY_LR:
            return self._decay(trial, decision.factor)
        return action

    def _rung_result(self, trial: Trial, result: dict) -> dict:
        """What Ray's rungs compare: the report itself, or with `rung_on_best` the trial's best
        validation loss so far (the best-epoch checkpoint it keeps, P6), so one noisy epoch at
        a rung does not prune a trial whose best model is good. Only when ASHA ranks the
        judge's own validation loss; a non-finite best leaves the report as it is."""
        if not self.rung_on_best or self._metric != self.judge.keys.val_loss:
            return result
        state = self.judge.states.get(trial.trial_id)
        if state is None or not math.isfinite(state.best):
            return result
        return {**result, self._metric: as_loss(state.best, self._mode)}

    def _decay(self, trial: Trial, factor: float | None) -> str:
        """Scale the trial's lr and pause it, so Ray checkpoints it and restarts it with it."""
        if factor is None or self.lr_config_key not in trial.config:
            logger.warning(
                "Plateau decay skipped for trial %s: no %r in its config; set the scheduler's "
                "lr_config_key to the learning-rate entry.", trial.trial_id, self.lr_config_key,
            )  # fmt: skip
            return TrialScheduler.CONTINUE
        config = copy.deepcopy(trial.config)
        config[self.lr_config_key] = config[self.lr_config_key] * factor
        trial.set_config(config)
        self._resume_first.add(trial.trial_id)
        return TrialScheduler.PAUSE

    def _record(
        self, trial: Trial, reason: StopReason, detail: str, best_epoch: int | None
    ) -> None:
        self.decisions.setdefault(trial.trial_id, StopRecord(reason, detail, best_epoch))

    def _forget_retried_error(self, trial_id: str) -> None:
        """Ray calls on_trial_error for a failure it will retry too (a lost node); a trial that
        reports again was retried, and its end is decided afresh."""
        record = self.decisions.get(trial_id)
        if record is not None and record.reason == StopReason.ERROR:
            del self.decisions[trial_id]

    def on_trial_error(self, tune_controller: Any, trial: Trial) -> None:
        """Record the error; Ray then removes the trial."""
        self._resume_first.discard(trial.trial_id)
        self._record(trial, StopReason.ERROR, "the trainable raised", None)

    def on_trial_complete(self, tune_controller: Any, trial: Trial, result: dict) -> None:
        self._resume_first.discard(trial.trial_id)
        super().on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller: Any, trial: Trial) -> None:
        self._resume_first.discard(trial.trial_id)
        super().on_trial_remove(tune_controller, trial)

    def awaiting_resume(self) -> bool:
        """True while a trial paused for an LR decay has not run again (see `search.py`)."""
        return bool(self._resume_first)

    def choose_trial_to_run(self, tune_controller: Any) -> Trial | None:
        """A trial paused for an LR decay resumes before new trials start."""
        for trial in tune_controller.get_trials():
            if trial.status == Trial.PAUSED and trial.trial_id in self._resume_first:
                return trial
        return super().choose_trial_to_run(tune_controller)

    def debug_string(self) -> str:
        """Ray's summary plus the count of playbook stops."""
        return super().debug_string() + f"\nPlaybook decisions: {len(self.decisions)}"
