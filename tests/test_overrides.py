"""`--set KEY=VALUE` (tunepipe.overrides) and the `trackers:` key, without a Ray session."""

from __future__ import annotations

import pytest

from tests.conftest import REPO, study_dict
from tunepipe.errors import StudyFileError
from tunepipe.overrides import apply_overrides, parse_override
from tunepipe.study import load_study, parse_study

DIGITS = REPO / "examples/digits.yaml"


@pytest.mark.parametrize(
    "text, path, value",
    [
        ("num_samples=4", ["num_samples"], 4),
        ("train.lr=1e-3", ["train", "lr"], 1e-3),  # YAML 1.1 would read 1e-3 as text
        ("trackers=[mlflow, wandb]", ["trackers"], ["mlflow", "wandb"]),
        ("search_space.lr={type: choice, values: [0.1]}", ["search_space", "lr"],
         {"type": "choice", "values": [0.1]}),
        ("name=a=b", ["name"], "a=b"),
        ("data.test_fraction=", ["data", "test_fraction"], None),
    ],
)  # fmt: skip
def test_parse_override_reads_dotted_keys_and_yaml_values(text, path, value):
    assert parse_override(text) == (path, value)


def test_overrides_apply_in_order_and_create_sections():
    raw = {"name": "s", "scheduler": {"kind": "asha"}}
    out = apply_overrides(
        raw, ["scheduler.max_epochs=3", "scheduler.max_epochs=5", "stopping.divergence.k=8"]
    )  # noqa: E501
    assert out == {
        "name": "s",
        "scheduler": {"kind": "asha", "max_epochs": 5},
        "stopping": {"divergence": {"k": 8}},
    }
    assert raw == {"name": "s", "scheduler": {"kind": "asha"}}  # the input is left alone


def test_overridden_study_equals_the_one_written_in_the_file():
    cfg = load_study(
        DIGITS,
        [
            "num_samples=4",
            "scheduler.max_epochs=3",
            "search_space.lr={type: loguniform, low: 1e-4, high: 1e-2}",
        ],
    )  # noqa: E501
    assert cfg.num_samples == 4 and cfg.scheduler.max_epochs == 3
    assert (cfg.search_space["lr"].low, cfg.search_space["lr"].high) == (1e-4, 1e-2)
    assert cfg.data.test_fraction == 0.1  # keys not overridden keep the file's values


@pytest.mark.parametrize(
    "sets, words",
    [
        (
            ["num_sample=4"],
            ["--set num_sample=4", "num_sample is not a study key", "did you mean num_samples"],
        ),  # noqa: E501
        (["scheduler.max_epoch=3"], ["did you mean scheduler.max_epochs"]),
        (["data.lable=y"], ["did you mean data.label"]),
        (["search_space.lr.hgh=1"], ["search_space.lr.hgh", "did you mean 'high'"]),
        (["name.first=x"], ["name is a value, not a section"]),
        (["zzz=1"], ["known keys here", "num_samples"]),
        (["num_samples"], ["write it as KEY=VALUE"]),
        (["num_samples=[4"], ["not valid YAML", "quote"]),
        (["num_samples=0"], ["num_samples: input should be greater than or equal to 1 (got 0)"]),
        (["scheduler.grace_period=50"], ["scheduler.grace_period", "max_epochs"]),
    ],
)
def test_bad_overrides_name_the_dotted_key(sets, words):
    with pytest.raises(StudyFileError) as err:
        load_study(DIGITS, sets)
    text = "\n".join(err.value.problems)
    for word in words:
        assert word in text


def test_every_bad_override_is_reported_at_once():
    with pytest.raises(StudyFileError) as err:
        load_study(DIGITS, ["num_sample=4", "sed=1", "seed"])
    assert len(err.value.problems) == 3


def test_trackers_key_and_the_tensorboard_synonym():
    assert parse_study(study_dict()).active_trackers == []
    assert parse_study(study_dict(tensorboard=True)).active_trackers == ["tensorboard"]
    both = parse_study(study_dict(tensorboard=True, trackers=["tensorboard", "mlflow"]))
    assert both.active_trackers == ["tensorboard", "mlflow"]
    with pytest.raises(StudyFileError, match="trackers.0: must be 'mlflow', 'wandb' or"):
        parse_study(study_dict(trackers=["mlfow"]))
    with pytest.raises(StudyFileError, match="mlflow listed more than once"):
        parse_study(study_dict(trackers=["mlflow", "mlflow"]))


def test_wandb_without_an_account_or_offline_mode_is_a_clear_error(monkeypatch, tmp_path):
    from tunepipe.engine.trackers import TrackerError, check_trackers

    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc: not logged in
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    study = parse_study(study_dict(trackers=["wandb"]))
    with pytest.raises(TrackerError, match="WANDB_API_KEY .* or WANDB_MODE=offline"):
        check_trackers(study)
    monkeypatch.setenv("WANDB_MODE", "offline")
    check_trackers(study)
    check_trackers(parse_study(study_dict(trackers=["mlflow", "tensorboard"])))


def test_a_missing_tracker_package_says_what_to_install(monkeypatch):
    import importlib.util

    from tunepipe.engine import trackers

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a)
    )
    with pytest.raises(trackers.TrackerError, match=r"mlflow needs the mlflow package: pip"):
        trackers.check_trackers(parse_study(study_dict(trackers=["mlflow"])))


def test_tracker_callbacks_are_rays_own_loggers(monkeypatch, tmp_path):
    from ray.air.integrations.mlflow import MLflowLoggerCallback
    from ray.air.integrations.wandb import WandbLoggerCallback
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback, TBXLoggerCallback

    from tunepipe.engine.trackers import TrialOutcome, tracker_callbacks
    from tunepipe.storage import locate

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "w"))
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    monkeypatch.delenv("WANDB_RUN_GROUP", raising=False)

    def kinds(**overrides):
        study = parse_study(study_dict(**overrides))
        loc = locate(str(tmp_path), study.name)
        return tracker_callbacks(study, loc, TrialOutcome(study, None))

    plain = kinds()  # Ray's loggers (restoring a log from storage only for a new driver)
    assert [type(c).__name__ for c in plain] == ["SessionCSVLogger", "SessionJsonLogger"]
    assert isinstance(plain[0], CSVLoggerCallback) and isinstance(plain[1], JsonLoggerCallback)
    assert isinstance(kinds(tensorboard=True)[-1], TBXLoggerCallback)  # the old key, a synonym
    _, _, mlflow_cb, wandb_cb = kinds(trackers=["mlflow", "wandb"])
    assert isinstance(mlflow_cb, MLflowLoggerCallback) and mlflow_cb.experiment_name == "t"
    assert isinstance(wandb_cb, WandbLoggerCallback)
    assert (wandb_cb.project, wandb_cb.group) == ("t", "t")  # the study's name by default
    assert wandb_cb.kwargs == {"mode": "offline", "dir": str(tmp_path / "w")}
