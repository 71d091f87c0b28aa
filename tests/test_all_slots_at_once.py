"""tunepipe_schedulers.actors: under a searcher, every slot's trial actor is asked for at once (the
whole-study effect: test_search_budgets.py, test_a_model_based_search_runs_a_trial_on_every_cpu)."""

from __future__ import annotations

import pickle

import pytest
from ray.tune.execution.placement_groups import PlacementGroupFactory

from tunepipe_schedulers import actors
from tunepipe_schedulers.actors import AllSlotsAtOnce, trial_slots
from tunepipe_schedulers.judge import PlaybookJudge
from tunepipe_schedulers.ray_asha import PlaybookASHA


class Controller:
    """What AllSlotsAtOnce touches of Tune's controller: its pending-trial count."""

    def __init__(self) -> None:
        self.pending_calls: list[int | None] = []

    def update_max_pending_trials(self, max_pending_trials: int | None = None) -> None:
        self.pending_calls.append(max_pending_trials)


class Trial:
    def __init__(self, cpu: float = 1, gpu: float = 0) -> None:
        self.trial_id, self.config = f"t{id(self)}", {}
        self.placement_group_factory = PlacementGroupFactory([{"CPU": cpu, "GPU": gpu}])


@pytest.fixture
def four_cpus(monkeypatch):
    monkeypatch.setattr(actors, "_cluster_resources", lambda: {"CPU": 4.0})


@pytest.mark.parametrize(
    ("cluster", "needs", "slots"),
    [
        ({"CPU": 2.0}, {"CPU": 1.0}, 2),
        ({"CPU": 16.0, "GPU": 1.0}, {"CPU": 1.0, "GPU": 0.25}, 4),  # 4 trials share the GPU
        ({"CPU": 3.0}, {"CPU": 2.0}, 1),
        ({"CPU": 1.0}, {"CPU": 2.0}, 1),  # does not fit (yet): Tune waits for resources
        ({"CPU": 8.0}, {"CPU": 0.0}, 1),  # needs nothing: no resource says how many
        ({"CPU": 1e6}, {"CPU": 1.0}, actors.MAX_SLOTS),
    ],
)
def test_trial_slots(cluster, needs, slots):
    assert trial_slots(cluster, needs) == slots


def test_a_searcher_is_asked_for_a_trial_per_slot_until_the_first_result(four_cpus):
    ctl = Controller()
    scheduler = PlaybookASHA(
        judge=PlaybookJudge(None, None, None), metric="val_loss", mode="min", max_t=3
    )
    scheduler.actors.one_at_a_time, scheduler.actors.limit = True, 3
    first, second = Trial(), Trial()
    scheduler.on_trial_add(ctl, first)
    scheduler.on_trial_add(ctl, second)
    assert ctl.pending_calls == [3]  # min(4 CPUs, max_concurrent_trials 3), once
    scheduler.on_trial_result(ctl, first, {"training_iteration": 1, "val_loss": 0.5})
    scheduler.on_trial_result(ctl, second, {"training_iteration": 1, "val_loss": 0.4})
    assert ctl.pending_calls == [3, None]  # then Tune's own count again, once


@pytest.mark.parametrize(
    ("one_at_a_time", "limit", "gpu"),
    [(False, 0, 0), (True, 1, 0), (True, 0, 1)],  # Ray's generator; one slot; one GPU, no more
)
def test_nothing_changes_where_tune_starts_every_slot_or_there_is_one(
    monkeypatch, one_at_a_time, limit, gpu
):
    monkeypatch.setattr(actors, "_cluster_resources", lambda: {"CPU": 4.0, "GPU": 1.0})
    ctl, slots = Controller(), AllSlotsAtOnce(one_at_a_time=one_at_a_time, limit=limit)
    slots.on_trial_add(ctl, Trial(gpu=gpu))
    slots.on_trial_result(ctl)
    assert ctl.pending_calls == []


def test_a_restored_run_asks_again_in_its_new_controller(four_cpus):
    first, slots = Controller(), AllSlotsAtOnce(one_at_a_time=True)
    slots.on_trial_add(first, Trial())
    restored = pickle.loads(pickle.dumps(slots))  # as Tune saves it in tuner.pkl
    second = Controller()
    restored.on_trial_add(second, Trial())
    assert first.pending_calls == [4] and second.pending_calls == [4]
