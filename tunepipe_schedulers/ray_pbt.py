"""PlaybookPBT: Ray Tune's Population Based Training with the playbook's explore step and stops.

PBT (Jaderberg et al. 2017, arXiv:1711.09846). Construction (what the engine does)::

    from tunepipe_schedulers.judge import PlaybookJudge
    from tunepipe_schedulers.rules import DivergenceRule, OverfittingRule
    from tunepipe_schedulers.ray_pbt import PlaybookPBT

    space = {"lr": {"type": "loguniform", "low": 1e-4, "high": 1e-1},
             "momentum": {"type": "uniform", "low": 0.8, "high": 0.999},
             "batch_size": {"type": "choice", "values": [16, 32, 64, 128]}}
    scheduler = PlaybookPBT(space, judge=PlaybookJudge(DivergenceRule(), OverfittingRule(), None),
                            metric="val_loss", mode="min", perturbation_interval=4, seed=0)
    tune.Tuner(trainable, param_space=..., tune_config=tune.TuneConfig(scheduler=scheduler,
               num_samples=8), run_config=tune.RunConfig(checkpoint_config=
               tune.CheckpointConfig(num_to_keep=None)))  # PBT clones any older checkpoint

``scheduler.decisions`` is read as PlaybookASHA's: ``{trial_id: StopRecord(reason, detail,
best_epoch)}`` for the trials the rules stopped; ``scheduler.exploits`` is each trial's exploit
history (at which epoch, from which trial, which config entries changed from what to what).
PBT itself never stops a trial, so it needs no stop reason of its own; a trial that was
exploited carries on under its id.

Plateau decay is off under PBT by default (pass a judge without a plateau rule, as above): a
stalled trial falls into PBT's lower quantile and clones a better one, with the lr moved by the
decay factors, which is the decay the rule would have made. The trainable must restore from
``tune.get_checkpoint()`` and then set the optimizer's lr (and momentum, batch size) from config.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers.pbt import PopulationBasedTraining
from ray.tune.schedulers.trial_scheduler import TrialScheduler

from tunepipe_schedulers.explore import ExplorePolicy, mutations_from_space, playbook_explore
from tunepipe_schedulers.judge import PlaybookJudge
from tunepipe_schedulers.ray_asha import StopRecord
from tunepipe_schedulers.rules import STOP, DivergenceRule, OverfittingRule


class PlaybookPBT(PopulationBasedTraining):
    """PBT whose explore step follows `tunepipe_schedulers.explore` and whose trials obey the rules.

    Args:
        space: {name: {"type": "loguniform"|"uniform"|"int"|"choice", ...}} (see explore).
        judge: the playbook rules; default divergence + overfitting, no plateau rule.
        policy: which entries are lr, momentum and batch size, and the factors.
        seed: seeds the explore step's random.Random (house style 7).
        time_attr, metric, mode, perturbation_interval, burn_in_period, quantile_fraction,
            synch, log_config: as in Ray's `PopulationBasedTraining`.
    """

    def __init__(
        self,
        space: Mapping[str, Mapping[str, Any]],
        judge: PlaybookJudge | None = None,
        policy: ExplorePolicy = ExplorePolicy(),
        seed: int | None = None,
        time_attr: str = "training_iteration",
        metric: str | None = None,
        mode: str | None = None,
        perturbation_interval: float = 4,
        burn_in_period: float = 0.0,
        quantile_fraction: float = 0.25,
        synch: bool = False,
        log_config: bool = True,
        max_t: int | None = None,
    ) -> None:
        super().__init__(
            time_attr=time_attr,
            metric=metric,
            mode=mode,
            perturbation_interval=perturbation_interval,
            burn_in_period=burn_in_period,
            hyperparam_mutations=mutations_from_space(space, policy.batch_key),
            quantile_fraction=quantile_fraction,
            resample_probability=policy.resample_probability,
            log_config=log_config,
            synch=synch,
        )
        self.space = {k: dict(v) for k, v in space.items()}
        self.policy = policy
        self.rng = random.Random(seed)
        default = PlaybookJudge(DivergenceRule(), OverfittingRule(), None)
        self.judge = judge if judge is not None else default
        self.decisions: dict[str, StopRecord] = {}
        # {trial_id: [{"epoch", "from", "changed": {key: [before, after]}}]}, in order
        self.exploits: dict[str, list[dict[str, Any]]] = {}
        self.max_t = max_t  # the trials' epoch budget: a donor that reached it leaves no epochs

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict) -> str:
        """Rules first: a rule stop ends the trial; otherwise PBT's exploit/explore."""
        epoch = result.get(self._time_attr)
        if epoch is not None:
            decision = self.judge.on_report(trial.trial_id, int(epoch), result)
            if decision.action == STOP:
                record = StopRecord(decision.reason, decision.detail, decision.best_epoch)
                self.decisions.setdefault(trial.trial_id, record)
                return TrialScheduler.STOP
        return super().on_trial_result(tune_controller, trial, result)

    def awaiting_resume(self) -> bool:
        """True while an exploited trial is paused, to resume with its new config (see
        tunepipe_schedulers.search)."""
        return any(t.status == Trial.PAUSED for t in self._trial_state)

    def _get_new_config(self, trial: Trial, trial_to_clone: Trial) -> tuple[dict, dict]:
        # Ray's hook for the explore step; ours follows the playbook and the injected RNG.
        return playbook_explore(trial_to_clone.config, self.space, self.rng, self.policy)

    def _exploit(self, tune_controller: Any, trial: Trial, trial_to_clone: Trial) -> None:
        if self.max_t is not None and _reached(trial_to_clone, self._time_attr, self.max_t):
            # The donor's newest checkpoint is at the end of the budget: the clone would have
            # no epoch left to run its new config in, and would end as the donor's copy under a
            # config it never trained with. Such a trial keeps its own weights and config.
            return
        # The trial now carries the clone's weights, so it inherits the clone's rule memory too.
        before = dict(trial.config)
        super()._exploit(tune_controller, trial, trial_to_clone)
        self.judge.load_state(trial.trial_id, self.judge.state_dict(trial_to_clone.trial_id))
        changed = {k: [before.get(k), v] for k, v in trial.config.items() if before.get(k) != v}
        epoch = (getattr(trial, "last_result", None) or {}).get(self._time_attr)
        self.exploits.setdefault(trial.trial_id, []).append(
            {"epoch": epoch, "from": trial_to_clone.trial_id, "changed": changed}
        )


def _reached(trial: Any, time_attr: str, max_t: int) -> bool:
    done = (getattr(trial, "last_result", None) or {}).get(time_attr)
    return isinstance(done, (int, float)) and done >= max_t
