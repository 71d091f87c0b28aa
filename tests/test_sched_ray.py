"""PlaybookASHA / PlaybookPBT fed fake trials: no Ray session is started."""

import pickle
import random
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

from tunepipe_schedulers.cutoffs import SortedRung
from tunepipe_schedulers.explore import ExplorePolicy, mutations_from_space, playbook_explore
from tunepipe_schedulers.judge import PlaybookJudge
from tunepipe_schedulers.ray_asha import PlaybookASHA
from tunepipe_schedulers.ray_pbt import PlaybookPBT
from tunepipe_schedulers.reasons import StopReason
from tunepipe_schedulers.rules import PlateauRule


class FakeTrial:
    """What the schedulers read and write on a Ray Trial."""

    def __init__(self, trial_id: str, config: dict | None = None) -> None:
        self.trial_id, self.config, self.status = trial_id, dict(config or {}), "RUNNING"
        self.experiment_tag, self.evaluated_params = trial_id, {}
        manager = SimpleNamespace(checkpoint_config=SimpleNamespace(num_to_keep=None))
        self.run_metadata = SimpleNamespace(checkpoint_manager=manager)

    def set_config(self, config: dict) -> None:
        self.config = config

    def set_experiment_tag(self, tag: str) -> None:
        self.experiment_tag = tag

    def is_finished(self) -> bool:
        return self.status in ("TERMINATED", "ERROR")


class FakeController:
    def __init__(self, trials) -> None:
        self.trials, self.search_alg, self.paused = trials, None, []

    def get_trials(self):
        return self.trials

    def pause_trial(self, trial, should_checkpoint=True):
        self.paused.append(trial.trial_id)
        trial.status = "PAUSED"

    def _schedule_trial_save(self, trial, result=None):
        return f"ckpt-{trial.trial_id}"


def report(s, c, t, epoch, val, train=None, **extra):
    result = {"training_iteration": epoch, "val_loss": val, **extra}
    if train is not None:
        result["train_loss"] = train
    return s.on_trial_result(c, t, result)


@pytest.mark.parametrize("rf", [2, 3, 4])
@pytest.mark.parametrize("seed", [0, 1])
def test_sorted_rung_cutoff_equals_ray_nanpercentile(rf, seed):
    rng = np.random.default_rng(seed)
    values = rng.normal(size=200) * 10.0 ** rng.integers(-3, 3, size=200)
    values[rng.random(200) < 0.1] = np.nan
    rung, q = SortedRung(), (1 - 1 / rf) * 100
    for n, v in enumerate(values, 1):
        rung[str(n)] = float(v)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = np.nanpercentile(values[:n], q)
        got = rung.percentile(q)
        assert got == expected or (np.isnan(got) and np.isnan(expected))


def test_sorted_rung_survives_pickle_and_overwrite():
    rung = SortedRung({"a": 3.0, "b": 1.0})
    rung["a"] = 0.5
    assert pickle.loads(pickle.dumps(rung)).sorted == [0.5, 1.0]


def test_asha_promotions_match_rays_asha_on_random_curves():
    from ray.tune.schedulers import AsyncHyperBandScheduler

    rng = np.random.default_rng(0)
    curves = rng.random((60, 1)) + 1.0 / np.arange(1, 28) + rng.normal(0, 0.05, (60, 27))
    kw = dict(metric="val_loss", mode="min", max_t=27, grace_period=1, reduction_factor=3)
    ours = PlaybookASHA(judge=PlaybookJudge(None, None, None), **kw)
    ray = AsyncHyperBandScheduler(**kw)
    acts = {}
    for s in (ours, ray):
        trials = [FakeTrial(str(i)) for i in range(60)]
        for t in trials:
            s.on_trial_add(None, t)
        acts[s] = [report(s, None, t, e + 1, curves[i, e]) for e in range(27) for i, t in
                   enumerate(trials)]  # fmt: skip
    assert acts[ours] == acts[ray] and "STOP" in acts[ours]


@pytest.mark.parametrize("rung_on_best, last", [(False, "STOP"), (True, "CONTINUE")])
def test_asha_rungs_can_compare_each_trials_best_loss(rung_on_best, last):
    # Trial a's best so far (0.2) beats b's 0.4 at the rung; its latest report (0.9) does not.
    s = PlaybookASHA(
        judge=PlaybookJudge(None, None, None),
        metric="val_loss",
        mode="min",
        max_t=8,
        grace_period=1,
        reduction_factor=2,
        rung_on_best=rung_on_best,
    )
    a, b = FakeTrial("a"), FakeTrial("b")
    s.on_trial_add(None, a)
    s.on_trial_add(None, b)
    actions = [
        s.on_trial_result(None, t, {"training_iteration": epoch, "val_loss": v})
        for t, epoch, v in [(b, 1, 0.5), (b, 2, 0.4), (a, 1, 0.2), (a, 2, 0.9)]
    ]
    assert actions == ["CONTINUE", "CONTINUE", "CONTINUE", last]


def test_asha_rule_stop_is_recorded_with_reason():
    s = PlaybookASHA(judge=PlaybookJudge(initial_loss=2.3), metric="val_loss", mode="min")
    t = FakeTrial("t")
    s.on_trial_add(None, t)
    assert report(s, None, t, 1, 1e5) == "STOP"
    assert s.decisions["t"].reason is StopReason.DIVERGED


def test_asha_pruned_and_completed_reasons():
    s = PlaybookASHA(judge=PlaybookJudge(None, None, None), metric="val_loss", mode="min",
                     max_t=4, grace_period=1, reduction_factor=2)  # fmt: skip
    good, bad = FakeTrial("good"), FakeTrial("bad")
    for t in (good, bad):
        s.on_trial_add(None, t)
    report(s, None, good, 1, 0.1)
    report(s, None, bad, 1, 0.9)
    report(s, None, good, 4, 0.05)
    assert s.decisions["bad"].reason is StopReason.PRUNED
    assert s.decisions["good"].reason is StopReason.COMPLETED


def test_asha_plateau_decay_pauses_with_scaled_lr_and_resumes_first():
    judge = PlaybookJudge(None, None, PlateauRule(patience=2, factor=0.3))
    s = PlaybookASHA(judge=judge, metric="val_loss", mode="min", max_t=100, grace_period=50)
    t, new = FakeTrial("t", {"lr": 0.1}), FakeTrial("new")
    s.on_trial_add(None, t)
    actions = [report(s, None, t, e, 1.0) for e in (1, 2, 3)]
    t.status, new.status = "PAUSED", "PENDING"
    assert actions == ["CONTINUE", "CONTINUE", "PAUSE"]
    assert t.config["lr"] == pytest.approx(0.03)
    assert s.choose_trial_to_run(FakeController([new, t])) is t


@pytest.mark.parametrize("end", ["remove", "error", "complete"])
def test_asha_awaits_resume_of_decayed_trials_until_they_report_or_end(end):
    # tunepipe_schedulers.search holds the experiment open on this, so it must not stay true for a
    # trial that will never run again (the experiment would never end).
    judge = PlaybookJudge(None, None, PlateauRule(patience=2, factor=0.5))
    s = PlaybookASHA(judge=judge, metric="val_loss", mode="min", max_t=100, grace_period=50)
    a, b = FakeTrial("a", {"lr": 0.1}), FakeTrial("b", {"lr": 0.1})
    for t in (a, b):
        s.on_trial_add(None, t)
    assert not s.awaiting_resume()
    assert [report(s, None, t, e, 1.0) for t in (a, b) for e in (1, 2, 3)][-1] == "PAUSE"
    assert s.awaiting_resume()
    report(s, None, a, 4, 0.5)  # a resumed
    assert s.awaiting_resume()  # b has not
    if end == "remove":
        s.on_trial_remove(None, b)
    elif end == "error":
        s.on_trial_error(None, b)
    else:
        s.on_trial_complete(None, b, {"training_iteration": 3, "val_loss": 1.0})
    assert not s.awaiting_resume()


def test_search_is_unfinished_while_the_scheduler_awaits_a_resume():
    from tunepipe_schedulers.search import ResumeFirstSearch

    sched = SimpleNamespace(waiting=True)
    sched.awaiting_resume = lambda: sched.waiting
    search = ResumeFirstSearch(sched, random_state=0)
    search.set_finished()  # every new trial has been generated
    assert not search.is_finished()
    sched.waiting = False
    assert search.is_finished()
    state = search.get_state()
    assert "_scheduler" not in state  # Tune snapshots this often; the scheduler is saved apart
    restored = ResumeFirstSearch(sched)
    restored.set_state(state)
    assert restored._scheduler is sched and restored.is_finished()
    plain = ResumeFirstSearch(object())  # a scheduler that never pauses: Ray's plain generator
    plain.set_finished()
    assert plain.is_finished()


def test_asha_decay_without_lr_in_config_continues():
    judge = PlaybookJudge(None, None, PlateauRule(patience=1))
    s = PlaybookASHA(judge=judge, metric="val_loss", mode="min", grace_period=50)
    t = FakeTrial("t", {"learning_rate": 0.1})
    s.on_trial_add(None, t)
    assert [report(s, None, t, e, 1.0) for e in (1, 2)] == ["CONTINUE", "CONTINUE"]


def test_asha_scheduler_state_pickles():
    s = PlaybookASHA(metric="val_loss", mode="min")
    t = FakeTrial("t")
    s.on_trial_add(None, t)
    report(s, None, t, 1, 1.0, 1.0)
    assert pickle.loads(pickle.dumps(s)).judge.states["t"].best == 1.0


SPACE = {
    "lr": {"type": "loguniform", "low": 1e-4, "high": 1e-1},
    "momentum": {"type": "uniform", "low": 0.8, "high": 0.999},
    "batch_size": {"type": "int", "low": 16, "high": 128},
    "act": {"type": "choice", "values": ["relu", "tanh"]},
}
NO_RESAMPLE = ExplorePolicy(resample_probability=0.0)


def test_mutations_batch_size_is_powers_of_two_within_bounds():
    assert mutations_from_space(SPACE)["batch_size"] == [16, 32, 64, 128]


def test_explore_moves_lr_by_decay_factors_both_ways():
    config = {"lr": 0.01, "momentum": 0.9, "batch_size": 32, "act": "relu"}
    lrs = {round(playbook_explore(config, SPACE, random.Random(i), NO_RESAMPLE)[0]["lr"], 6)
           for i in range(200)}  # fmt: skip
    assert lrs == {0.005, 0.003, 0.02, round(0.01 / 0.3, 6)}


def test_explore_raises_momentum_and_caps_it():
    new, _ = playbook_explore({"momentum": 0.9}, {"momentum": SPACE["momentum"]},
                              random.Random(0), NO_RESAMPLE)  # fmt: skip
    top, _ = playbook_explore({"momentum": 0.998}, {"momentum": SPACE["momentum"]},
                              random.Random(0), NO_RESAMPLE)  # fmt: skip
    assert new["momentum"] == pytest.approx(0.95) and top["momentum"] == 0.999


def test_explore_batch_size_shifts_one_power_of_two():
    sizes = {
        playbook_explore(
            {"batch_size": 128}, {"batch_size": SPACE["batch_size"]}, random.Random(i), NO_RESAMPLE
        )[0]["batch_size"]
        for i in range(50)
    }
    assert sizes == {64, 128}


def test_space_errors_name_the_entry():
    with pytest.raises(ValueError, match=r"space.lr.low"):
        mutations_from_space({"lr": {"type": "loguniform", "low": 0.0, "high": 1.0}})


def test_pbt_rule_stop_and_exploit_copies_rule_state():
    s = PlaybookPBT(SPACE, judge=PlaybookJudge(initial_loss=2.3), metric="val_loss",
                    mode="min", perturbation_interval=2, seed=0, log_config=False)  # fmt: skip
    trials = [FakeTrial(str(i), {"lr": 0.01, "momentum": 0.9, "batch_size": 32, "act": "relu"})
              for i in range(4)]  # fmt: skip
    c = FakeController(trials)
    for t in trials:
        s.on_trial_add(c, t)
    assert report(s, c, trials[3], 1, 1e5) == "STOP"
    trials[3].status = "TERMINATED"
    for e in (1, 2, 3, 4):  # at 2 the best has no checkpoint yet; at 4 it has
        for i, t in enumerate(trials[:3]):
            report(s, c, t, e, 1.0 + 0.5 * i)  # all below 2.3: each learned
    assert s.decisions["3"].reason is StopReason.DIVERGED
    assert c.paused == ["2"] and trials[2].config != trials[0].config
    assert s.awaiting_resume()  # the exploited trial waits to resume with its new config
    trials[2].status = "RUNNING"
    assert not s.awaiting_resume()
    assert s.judge.state_dict("2")["best"] == s.judge.state_dict("0")["best"]
    (exploit,) = s.exploits["2"]  # decisions.json's history: from whom, what changed
    assert exploit["from"] == "0" and exploit["changed"]
    assert all(trials[2].config[k] == new for k, (_, new) in exploit["changed"].items())


def test_pbt_never_clones_a_donor_that_reached_the_epoch_budget():
    # A clone of a donor whose newest checkpoint is at max_t would have no epoch left to run its
    # new config in: it would end as the donor's copy under a config it never trained with.
    s = PlaybookPBT(SPACE, judge=PlaybookJudge(initial_loss=2.3), metric="val_loss",
                    mode="min", perturbation_interval=2, seed=0, log_config=False,
                    max_t=4)  # fmt: skip
    trials = [FakeTrial(str(i), {"lr": 0.01, "momentum": 0.9, "batch_size": 32, "act": "relu"})
              for i in range(4)]  # fmt: skip
    c = FakeController(trials)
    for t in trials:
        s.on_trial_add(c, t)
    before = dict(trials[3].config)
    trials[0].last_result = {"training_iteration": 4}
    s._exploit(c, trials[3], trials[0])  # noqa: SLF001 - the override under test
    assert trials[3].config == before and "3" not in s.exploits
    from tunepipe_schedulers.ray_pbt import _reached

    assert not _reached(
        SimpleNamespace(last_result={"training_iteration": 3}), "training_iteration", 4
    )


def _rank_asha(rf: float) -> PlaybookASHA:
    return PlaybookASHA(
        judge=PlaybookJudge(None, None, None),
        metric="val_loss",
        mode="min",
        max_t=100,
        grace_period=1,
        reduction_factor=rf,
        rung_rule="rank",
    )


@pytest.mark.parametrize("rf", [2, 3, 4])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_asha_rank_rule_prunes_as_optunas_successive_halving(rf, seed):
    # Trials arrive one by one at the first rung (epoch 1); Optuna's own pruner and the rank rule
    # must keep and prune the same ones, early arrivals included.
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    losses = np.random.default_rng(seed).lognormal(0, 1, 40)
    losses[[7, 19]] = np.nan  # a NaN loss never passes a rung, in either
    study = optuna.create_study(
        pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=rf)
    )
    s = _rank_asha(rf)
    optuna_kept, ours_kept = [], []
    for i, loss in enumerate(losses):
        trial = study.ask()
        trial.report(float(loss), 1)
        optuna_kept.append(not trial.should_prune())
        t = FakeTrial(f"t{i}")
        s.on_trial_add(None, t)
        ours_kept.append(report(s, None, t, 1, float(loss)) == "CONTINUE")
    assert ours_kept == optuna_kept
    assert 0 < sum(ours_kept) < len(losses)


def test_asha_rank_rule_is_stricter_than_rays_percentile_for_early_arrivals():
    # The fourth trial (0.35) is not the best of four (0.3 is): the rank rule stops it; Ray's
    # rule compares it with the 75th percentile of the three before it (-0.35) and keeps it.
    actions = {}
    for rule in ("percentile", "rank"):
        s = _rank_asha(4)
        s._brackets[0].rule = rule
        trials = [FakeTrial(n) for n in "abcd"]
        for t in trials:
            s.on_trial_add(None, t)
        actions[rule] = [
            report(s, None, t, 1, v) for t, v in zip(trials, (0.5, 0.4, 0.3, 0.35), strict=True)
        ]
    assert actions["percentile"] == ["CONTINUE"] * 4
    assert actions["rank"] == ["CONTINUE", "CONTINUE", "CONTINUE", "STOP"]
    with pytest.raises(ValueError, match="rung_rule"):
        PlaybookASHA(metric="val_loss", mode="min", rung_rule="median")


def test_a_study_files_rung_rule_reaches_the_scheduler_and_a_wrong_one_is_named():
    import yaml

    from tunepipe.engine.schedule import build_scheduler
    from tunepipe.errors import StudyFileError
    from tunepipe.study import parse_study

    raw = yaml.safe_load(open("examples/digits.yaml"))
    raw["scheduler"] = {**raw["scheduler"], "rung_rule": "rank"}
    assert [b.rule for b in build_scheduler(parse_study(raw))._brackets] == ["rank"]
    raw["scheduler"]["rung_rule"] = "median"
    with pytest.raises(StudyFileError, match=r"scheduler\.rung_rule.*percentile.*rank"):
        parse_study(raw, source="study.yaml")
