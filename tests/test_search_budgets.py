"""Search and budgets (docs/search.md): samplers, conditional spaces, warm start, time budget,
target and max_concurrent_trials, tested as a user meets them."""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.conftest import study_dict
from tunepipe.config.search import parse_duration
from tunepipe.errors import StudyFileError
from tunepipe.study import parse_study
from tunepipe_schedulers.ray_asha import StopRecord
from tunepipe_schedulers.reasons import StopReason

LR = {"type": "loguniform", "low": 1e-3, "high": 0.1}
OPT = {"type": "choice", "values": ["adam", "sgd"]}


def problems(**overrides) -> list[str]:
    with pytest.raises(StudyFileError) as caught:
        parse_study(study_dict(**overrides))
    return caught.value.problems


@pytest.mark.parametrize(
    ("overrides", "path", "words"),
    [
        (
            {"search": {"kind": "tpe"}, "search_space": {"lr": {"type": "grid", "values": [0.1]}}},
            "search_space.lr",
            "choice",
        ),
        (
            {
                "search": {"kind": "tpe"},
                "search_space": {"lr": LR},
                "scheduler": {"kind": "pbt", "max_epochs": 4},
            },
            "search.kind",
            "PBT",
        ),
        (
            {"search": {"kind": "cmaes"}, "search_space": {"optimizer": OPT, "lr": LR}},
            "search_space.optimizer",
            "tpe",
        ),
        ({"search": {"kind": "grid"}, "search_space": {"lr": LR}}, "search_space.lr", "choice"),
        ({"search": {"kind": "tpe"}}, "search.kind", "ranges or choices"),
        ({"warm_start": "runs/x", "search_space": {"lr": LR}}, "warm_start", "tpe or cmaes"),
        ({"target": {"train_loss": 0.1}}, "target.train_loss", "validation metric"),
        ({"target": {"val_acc": 97}}, "target.val_acc", "between 0 and 1"),
        (
            {"search_space": {"momentum": {**LR, "when": {"optimizer": "sgd"}}}},
            "search_space.momentum.when.optimizer",
            "searched as a choice",
        ),
        (
            {
                "search_space": {
                    "optimizer": OPT,
                    "momentum": {**LR, "when": {"optimizer": "rmsprop"}},
                }
            },
            "search_space.momentum.when.optimizer",
            "not one of",
        ),
        ({"budget": {"time": "soon"}}, "budget.time", "20s"),
        ({"budget": {"max_concurrent_trials": 0}}, "budget.max_concurrent_trials", ""),
        ({"search": {"kind": "bayes"}}, "search.kind", ""),
    ],
)
def test_what_ray_or_optuna_would_refuse_is_refused_by_validate(overrides, path, words):
    found = [p for p in problems(**overrides) if p.startswith(path)]
    assert found and words in found[0], problems(**overrides)


def test_durations():
    assert [parse_duration(v) for v in ("20s", "15m", "2h", "1h30m", 90)] == [
        20,
        900,
        7200,
        5400,
        90,
    ]


def test_define_by_run_samples_a_conditional_setting_only_under_its_condition():
    import optuna

    from tunepipe.engine.search import define_by_run

    study = parse_study(
        study_dict(
            search={"kind": "tpe"},
            search_space={
                "momentum": {
                    "type": "uniform",
                    "low": 0.5,
                    "high": 0.9,
                    "when": {"optimizer": "sgd"},
                },
                "optimizer": OPT,
                "lr": LR,
                "depth": 2,
            },
        )
    )
    space = define_by_run(study)
    ot = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(30):
        trial = ot.ask()
        constants = space(trial)
        assert constants == {"depth": 2}
        assert ("momentum" in trial.params) == (trial.params["optimizer"] == "sgd")
        seen.add(trial.params["optimizer"])
        ot.tell(trial, 1.0)
    assert seen == {"adam", "sgd"}


class _Scheduler:
    def __init__(self):
        self.decisions = {}


def _searcher(scheduler, warm=()):
    from tunepipe.engine.search import build_search

    study = parse_study(
        study_dict(search={"kind": "tpe"}, search_space={"lr": LR, "optimizer": OPT})
    )
    generator = build_search(study, scheduler, list(warm))
    return generator.searcher


def test_the_searcher_is_told_pruned_trials_as_pruned_and_finished_ones_their_best():
    import optuna

    scheduler = _Scheduler()
    searcher = _searcher(scheduler)
    for tid in ("a", "b", "c"):
        assert set(searcher.suggest(tid)) == {"lr", "optimizer"}
    for epoch, loss in enumerate([0.9, 0.5, 0.7], start=1):  # best 0.5, last 0.7
        searcher.on_trial_result("a", {"val_loss": loss, "epoch": epoch})
    searcher.on_trial_result("a", {"val_loss": 0.7, "epoch": 3})  # resumed after a decay: again
    searcher.on_trial_complete("a", {"val_loss": 0.7, "epoch": 3})
    searcher.on_trial_complete("a", {"val_loss": 0.7, "epoch": 3})  # told once only
    searcher.on_trial_result("b", {"val_loss": 2.0, "epoch": 1})
    scheduler.decisions["b"] = StopRecord(StopReason.PRUNED, "rung 1", 1)
    searcher.on_trial_complete("b", {"val_loss": 2.0, "epoch": 1})
    searcher.on_trial_result("c", {"val_loss": float("nan"), "epoch": 1})
    scheduler.decisions["c"] = StopRecord(StopReason.DIVERGED, "nan", None)
    searcher.on_trial_complete("c", {"val_loss": float("nan"), "epoch": 1})
    trials = {t.number: t for t in searcher._ot_study.get_trials()}  # noqa: SLF001 - Optuna's own record
    assert trials[0].state == optuna.trial.TrialState.COMPLETE and trials[0].value == 0.5
    assert trials[0].intermediate_values == {1: 0.9, 2: 0.5, 3: 0.7}
    assert trials[1].state == optuna.trial.TrialState.PRUNED
    assert trials[2].state == optuna.trial.TrialState.PRUNED
    assert searcher.told == {"a": ("COMPLETE", 0.5), "b": ("PRUNED", None), "c": ("PRUNED", None)}


def test_ray_keeps_the_optuna_attributes_tunepipe_reads():
    from ray.tune.search.optuna import OptunaSearch

    searcher = OptunaSearch(metric="val_loss", mode="min")
    assert hasattr(searcher, "_ot_trials") and hasattr(searcher, "_completed_trials")
    assert hasattr(OptunaSearch, "_setup_study")


# ------------------------------------------------------------------ on the embedded Ray


def _run(tmp_path: Path, **overrides):
    from tunepipe.engine.runner import run_study

    study = parse_study(study_dict(**overrides))
    outcome = run_study(study, storage=str(tmp_path), progress=False)
    return Path(outcome.run_dir), outcome.summary


@pytest.mark.ray
def test_tpe_study_with_a_conditional_space_and_warm_start(ray_session, tmp_path, capsys):
    first_dir, _ = _run(
        tmp_path / "a",
        name="first",
        num_samples=5,
        search={"kind": "tpe", "n_startup_trials": 2},
        search_space={
            "lr": LR,
            "optimizer": OPT,
            "momentum": {"type": "uniform", "low": 0.5, "high": 0.95, "when": {"optimizer": "sgd"}},
        },
        scheduler={"kind": "fifo", "max_epochs": 2},
        playbook={"sanity": False},
    )
    rows = pq.read_table(first_dir / "results.parquet").to_pylist()
    assert len(rows) == 5
    for r in rows:  # sampled only under its condition; the trial kept its default otherwise
        assert (r["config.momentum"] is not None) == (r["config.optimizer"] == "sgd")

    # A narrower lr range: trials outside it are left out, with a count.
    from tunepipe.engine.warm_start import warm_points

    narrow = {"type": "loguniform", "low": 3e-3, "high": 0.1}
    second = parse_study(
        study_dict(
            name="second",
            search={"kind": "tpe"},
            warm_start=str(first_dir),
            search_space={
                "lr": narrow,
                "optimizer": OPT,
                "momentum": {
                    "type": "uniform",
                    "low": 0.5,
                    "high": 0.95,
                    "when": {"optimizer": "sgd"},
                },
            },
        )
    )
    kept, said = warm_points(second, str(first_dir))
    outside = sum(1 for r in rows if not 3e-3 <= r["config.lr"] <= 0.1)
    assert len(kept) == 5 - outside and f"{outside} outside the new space" in said
    assert sorted(v for _, v in kept) == sorted(
        r["val_loss"] for r in rows if 3e-3 <= r["config.lr"] <= 0.1
    )
    # ... and what is kept is what the second study's searcher starts from.
    searcher = _searcher_for(second, kept)
    warm_trials = searcher._ot_study.get_trials()  # noqa: SLF001
    assert sorted(t.value for t in warm_trials) == sorted(v for _, v in kept)
    assert all(t.params == p for t, (p, _) in zip(warm_trials, kept, strict=True))


def _searcher_for(study, warm):
    from tunepipe.engine.search import build_search

    return build_search(study, _Scheduler(), warm).searcher


@pytest.mark.ray
def test_a_time_budget_ends_the_study_resumably(ray_session, tmp_path):
    from tunepipe.engine.runner import resume_study

    run_dir, summary = _run(
        tmp_path,
        name="budgeted",
        num_samples=4,
        budget={"time": 3},
        model={"hidden_width": 256, "depth": 3},
        train={"batch_size": 8},
        scheduler={"kind": "fifo", "max_epochs": 12},
        stopping={"divergence": None, "overfitting": None, "plateau": None},
        playbook={"sanity": False},
    )
    assert "time budget" in summary["ended_by"]
    rows = pq.read_table(run_dir / "results.parquet").to_pylist()
    assert (run_dir / "report.html").exists()
    unfinished = [r for r in rows if r["stop_reason"] == "unfinished"]
    assert unfinished and all(r["epochs"] < 12 for r in unfinished)  # (0 on a loaded machine)
    assert summary["stop_reasons"].get("unfinished") == len(unfinished)

    outcome = resume_study(str(run_dir), progress=False, time_budget=0)  # 0: no budget now
    assert "ended_by" not in outcome.summary
    rows = pq.read_table(run_dir / "results.parquet").to_pylist()
    assert len(rows) == 4 and all(r["stop_reason"] == "completed" for r in rows)
    assert all(r["epochs"] == 12 for r in rows)


@pytest.mark.ray
def test_a_target_ends_the_study_and_stops_the_running_trials(ray_session, tmp_path):
    run_dir, summary = _run(
        tmp_path,
        name="target",
        num_samples=6,
        search_space={"lr": {"type": "choice", "values": [0.01]}},
        train={"optimizer": "adam"},
        target={"val_acc": 0.6},
        scheduler={"kind": "fifo", "max_epochs": 20},
        stopping={"divergence": None, "overfitting": None, "plateau": None},
        playbook={"sanity": False},
    )
    assert summary["ended_by"].startswith("target val_acc 0.6 reached by trial")
    rows = pq.read_table(run_dir / "results.parquet").to_pylist()
    assert max(r["val_acc"] or 0 for r in rows) >= 0.6
    assert len(rows) < 6 or all(r["epochs"] < 20 for r in rows)  # no trial ran out its budget
    assert {r["stop_reason"] for r in rows} <= {"target", "completed"}
    assert any(r["stop_reason"] == "target" for r in rows)


def _timed_spans(tmp_path: Path, num_samples: int, **overrides) -> list[tuple[float, float]]:
    """Run the `timed` trainable (3 reports, 0.2 s apart); each trial's (start, end), sorted."""
    study = {
        "name": "timed",
        "trainable": "timed:train",
        "code_dir": str(Path(__file__).parent / "user_code"),
        "search_space": {"x": {"type": "uniform", "low": 0, "high": 1}},
        "scheduler": {"kind": "fifo", "max_epochs": 3},
        "metric": "loss",
        "num_samples": num_samples,
        **overrides,
    }
    from tunepipe.engine.runner import run_study

    outcome = run_study(
        parse_study(study), study_dir=Path(__file__).parent, storage=str(tmp_path), progress=False
    )
    history = pq.read_table(Path(outcome.run_dir) / "history.parquet").to_pylist()
    spans = {}
    for row in history:
        start, end = spans.get(row["trial_id"], (math.inf, -math.inf))
        spans[row["trial_id"]] = (min(start, row["started"]), max(end, row["now"]))
    assert len(spans) == num_samples
    return sorted(spans.values())


def _most_at_once(spans: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most


@pytest.mark.ray
def test_max_concurrent_trials_one_never_runs_two_at_once(ray_session, tmp_path):
    ordered = _timed_spans(tmp_path, 4, budget={"max_concurrent_trials": 1})
    assert all(
        a_end <= b_start for (_, a_end), (b_start, _) in zip(ordered, ordered[1:], strict=False)
    )
    assert _most_at_once(ordered) == 1


@pytest.mark.ray
def test_a_model_based_search_runs_a_trial_on_every_cpu(ray_session, tmp_path):
    # Tune asks a searcher for one trial at a time: without tunepipe_schedulers.actors, the
    # second trial actor was still starting when the first trial ended, was dropped for the free
    # one, and a TPE study ran one trial at a time on 2 CPUs (measured: 1 worker, all trials).
    spans = _timed_spans(tmp_path, 6, search={"kind": "tpe", "n_startup_trials": 2})
    assert _most_at_once(spans) == 2
    busy = sum(e - s for s, e in spans)
    wall = spans[-1][1] - spans[0][0]
    assert busy / wall > 1.5, f"{busy:.2f} s of trials in {wall:.2f} s: mostly one at a time"


def test_cmaes_samples_ranges_through_optuna():
    from tunepipe.engine.search import build_search

    study = parse_study(
        study_dict(
            search={"kind": "cmaes", "n_startup_trials": 1},
            search_space={"lr": LR, "hidden_width": {"type": "randint", "low": 8, "high": 65}},
        )
    )
    searcher = build_search(study, _Scheduler()).searcher
    for i in range(4):
        config = searcher.suggest(str(i))
        assert 1e-3 <= config["lr"] <= 0.1 and 8 <= config["hidden_width"] <= 64
        searcher.on_trial_result(str(i), {"val_loss": config["lr"], "epoch": 1})
        searcher.on_trial_complete(str(i), {"val_loss": config["lr"], "epoch": 1})
    assert type(searcher._ot_study.sampler).__name__ == "CmaEsSampler"  # noqa: SLF001
