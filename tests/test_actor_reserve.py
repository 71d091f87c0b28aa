"""tunepipe_schedulers.actors: trial actors kept for every slot, every slot's actor asked for at
once under a searcher (the whole-study effect: test_search_budgets.py, every_cpu)."""

from __future__ import annotations

import pickle

import pytest
from ray.tune.execution.placement_groups import PlacementGroupFactory
from ray.tune.utils.object_cache import _ObjectCache

from tunepipe_schedulers import actors
from tunepipe_schedulers.actors import ActorReserve, trial_slots


class Controller:
    """What ActorReserve touches of Tune's controller: its actor cache and pending count."""

    def __init__(self) -> None:
        self._actor_cache = _ObjectCache(may_keep_one=True)
        self.pending_calls: list[int | None] = []

    def update_max_pending_trials(self, max_pending_trials: int | None = None) -> None:
        self.pending_calls.append(max_pending_trials)


class Trial:
    def __init__(self, cpu: float = 1, gpu: float = 0) -> None:
        self.placement_group_factory = PlacementGroupFactory([{"CPU": cpu, "GPU": gpu}])


@pytest.fixture
def cluster(monkeypatch):
    sizes = {"CPU": 4.0}
    monkeypatch.setattr(actors, "_cluster_resources", lambda: dict(sizes))
    return sizes


@pytest.mark.parametrize(
    ("cluster", "needs", "slots"),
    [
        ({"CPU": 2.0}, {"CPU": 1.0}, 2),
        ({"CPU": 16.0, "GPU": 1.0}, {"CPU": 1.0, "GPU": 0.25}, 4),  # 4 trials share the GPU
        ({"CPU": 3.0}, {"CPU": 2.0}, 1),
        ({"CPU": 1.0}, {"CPU": 2.0}, 1),  # does not fit (yet): Tune waits, one actor is kept
        ({"CPU": 8.0}, {"CPU": 0.0}, 1),  # needs nothing: no resource says how many
        ({"CPU": 1e6}, {"CPU": 1.0}, actors.MAX_RESERVED),
    ],
)
def test_trial_slots(cluster, needs, slots):
    assert trial_slots(cluster, needs) == slots


def test_the_cache_keeps_an_actor_per_slot_once(cluster):
    ctl, reserve, trial = Controller(), ActorReserve(), Trial()
    for _ in range(3):
        reserve.on_trial_add(ctl, trial)
    cache = ctl._actor_cache
    assert cache.total_max_objects == 4  # once, not per trial
    # Four trials that end in the same step all keep their actors (Tune alone kept one).
    assert all(cache.cache_object(trial.placement_group_factory, object()) for _ in range(4))
    assert not cache.cache_object(trial.placement_group_factory, object())
    assert ctl.pending_calls == []  # Ray's own generators: Tune's pending count untouched


def test_a_searcher_asks_for_a_trial_per_slot_until_the_first_result(cluster):
    ctl, reserve = Controller(), ActorReserve(one_at_a_time=True, limit=3)
    reserve.on_trial_add(ctl, Trial())
    reserve.on_trial_add(ctl, Trial())
    assert ctl.pending_calls == [3]  # min(4 CPUs, max_concurrent_trials 3), asked once
    reserve.on_trial_result(ctl)
    reserve.on_trial_result(ctl)
    assert ctl.pending_calls == [3, None]  # then Tune's own count again, once
    assert ctl._actor_cache.total_max_objects == 3


def test_a_restored_run_reserves_again_in_its_new_controller(cluster):
    first, reserve = Controller(), ActorReserve(one_at_a_time=True)
    reserve.on_trial_add(first, Trial())
    restored = pickle.loads(pickle.dumps(reserve))  # as Tune saves it in tuner.pkl
    assert restored.one_at_a_time and restored.reserved == {}
    second = Controller()
    restored.on_trial_add(second, Trial())
    assert second._actor_cache.total_max_objects == 4 and second.pending_calls == [4]


def test_without_tunes_actor_cache_the_study_runs_and_says_so(cluster, caplog):
    class Bare:
        def update_max_pending_trials(self, n=None):
            pass

    reserve = ActorReserve()
    reserve.on_trial_add(Bare(), Trial())
    reserve.on_trial_add(Bare(), Trial())
    said = [r.getMessage() for r in caplog.records if "actor cache" in r.getMessage()]
    assert len(said) == 1 and "one trial at a time" in said[0]
