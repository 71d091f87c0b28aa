"""Start a trial actor on every slot at once, whatever the search.

Tune asks a searcher (Optuna's TPE or CMA-ES through `SearchGenerator`) for one trial at a time:
`_get_max_pending_trials` is 1 for it, against hundreds for Ray's random search. So the second
trial's actor was asked for only once the first actor had started, and on a small study a trial
ends sooner than a worker starts (2-3 s here): the next trial took the first trial's free actor
(`reuse_actors=True`), Tune dropped the one still starting, and so on for every trial. A 32-trial
TPE study on digits ran every trial in one worker process on 2 CPUs (checked by the pid in each
trial's result.json; two with this; docs/search.md has the walls).

`AllSlotsAtOnce`, from PlaybookASHA's `on_trial_add` (the only hook Tune hands its controller
to), lets Tune ask for one trial per slot (the number of trials the cluster's resources fit)
until the first result, so every slot's actor starts at once, as under Ray's random search; then
Tune's own count again (`TuneController.update_max_pending_trials`). Those first trials have no
result to learn from in any parallel search. Once every slot has an actor, a trial's actor goes
to the next trial when it ends, as before.
"""

from __future__ import annotations

import math
from typing import Any

MAX_SLOTS = 256  # a bound for clusters that report huge resource totals


def trial_slots(cluster: dict[str, float], needs: dict[str, float]) -> int:
    """How many trials needing `needs` fit in `cluster` at once (at least 1; 1 for trials that
    need nothing, whose number no resource bounds)."""
    fits = [
        math.floor(cluster.get(name, 0.0) / amount + 1e-9)
        for name, amount in needs.items()
        if amount > 0
    ]
    return max(1, min(fits + [MAX_SLOTS])) if fits else 1


class AllSlotsAtOnce:
    """The part of a scheduler that has Tune start every slot's actor together.

    Attributes the engine sets before Tune starts:
        one_at_a_time: Tune asks the search algorithm for one trial at a time (a Searcher such
            as Optuna's); False for Ray's own generators, which hand over every trial at once.
        limit: the study's max_concurrent_trials (0: none), a cap on the slots.
    """

    def __init__(self, one_at_a_time: bool = False, limit: int = 0) -> None:
        self.one_at_a_time = one_at_a_time
        self.limit = limit
        self._asking_ahead = False
        self._seen_first = False  # a trial was added in this Tune session

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles the scheduler into tuner.pkl: a restored run starts its actors afresh.
        return {**self.__dict__, "_asking_ahead": False, "_seen_first": False}

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        first, self._seen_first = not self._seen_first, True
        if tune_controller is None or not (first and self.one_at_a_time):
            return  # tune_controller None: a scheduler driven by hand (simulate.py, tests)
        pgf = trial.placement_group_factory
        slots = trial_slots(_cluster_resources(), dict(pgf.required_resources))
        if self.limit:
            slots = min(slots, self.limit)
        if slots > 1:
            tune_controller.update_max_pending_trials(slots)
            self._asking_ahead = True

    def on_trial_result(self, tune_controller: Any) -> None:
        # Every slot's actor was asked for with the first trials: Tune's own count again.
        if self._asking_ahead and tune_controller is not None:
            self._asking_ahead = False
            tune_controller.update_max_pending_trials()


def _cluster_resources() -> dict[str, float]:
    import ray

    return dict(ray.cluster_resources())
