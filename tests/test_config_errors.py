"""Bad study files: every problem named by its field path, all at once, exit code 2 from the CLI.

Each file in tests/bad_studies/ says what it must produce in its header comments:
`# expect: field.path` once per error line (all of them: no more, no fewer) and optionally
`# says: text` that one of the lines must contain.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import tunepipe_cli
from tunepipe.config import StudyConfig
from tunepipe.errors import StudyFileError
from tunepipe.study import load_study, parse_study

REPO = Path(__file__).resolve().parents[1]
BAD = sorted((Path(__file__).parent / "bad_studies").glob("*.yaml"))
# `path: what (got VALUE)`, or `path: required, but missing` (nothing was given)
LINE = re.compile(r"^(?P<path>[\w.\[\]]+): (?P<what>.+?)(?: \(got (?P<got>.*)\))?$")


def expectations(path: Path) -> tuple[list[str], str | None]:
    text = path.read_text()
    paths = re.findall(r"^# expect: (\S+)$", text, flags=re.M)
    says = re.search(r"^# says: (.+)$", text, flags=re.M)
    return sorted(paths), says.group(1) if says else None


tunepipe = tunepipe_cli


def problems_of(path: Path) -> list[str]:
    with pytest.raises(StudyFileError) as info:
        load_study(path)
    return info.value.problems


def test_there_are_enough_bad_files():
    assert len(BAD) >= 15
    for path in BAD:
        assert expectations(path)[0], f"{path.name} has no '# expect:' line"


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_bad_study_names_every_field_path(path):
    expected, says = expectations(path)
    problems = problems_of(path)
    parsed = [LINE.match(p) for p in problems]
    assert all(parsed), f"lines not in `path: what (got VALUE)` form: {problems}"
    assert sorted(m["path"] for m in parsed) == expected, problems
    if says:
        assert any(says in p for p in problems), f"no line says {says!r}: {problems}"


@pytest.fixture(scope="module")
def cli_results() -> dict[Path, subprocess.CompletedProcess]:
    """`tunepipe validate` on every bad file, a few interpreters at a time (start-up dominates)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        return dict(zip(BAD, pool.map(lambda p: tunepipe("validate", str(p)), BAD), strict=True))


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_cli_validate_bad_study_exits_2_with_one_line_per_problem(path, cli_results):
    expected, _ = expectations(path)
    result = cli_results[path]
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == len(expected)
    assert sorted(LINE.match(line.removeprefix("error: "))["path"] for line in lines) == expected
    assert all(line.startswith("error: ") for line in lines)


def test_all_errors_reported_at_once_three_problems_three_lines():
    problems = problems_of(Path(__file__).parent / "bad_studies" / "three_problems.yaml")
    assert len(problems) == 3
    assert any(p.startswith("seed:") and "(got -3)" in p for p in problems)
    assert any(p.startswith("data.val_fraction:") and "(got 2)" in p for p in problems)
    assert any(p.startswith("model.depth:") and "(got -1)" in p for p in problems)


# ---------------------------------------------------------------- studies that must pass


GOOD = {
    "trainable only": {"name": "own", "trainable": "mypkg.train:fn", "metric": "accuracy"},
    "cnn on images": {
        "name": "cnn",
        "data": {"source": "digits", "label": "label", "image_shape": [1, 8, 8]},
        "model": {"kind": "cnn", "channels": [16, 32]},
    },
    "regression on rmse": {
        "name": "reg",
        "task": "regression",
        "data": {"source": "t.parquet", "label": ["a", "b"]},
        "model": {"kind": "mlp"},
        "metric": "val_rmse",
    },
    "custom model takes any search key": {
        "name": "custom",
        "data": {"source": "digits", "label": "label"},
        "model": {"factory": "mypkg.nets:build", "args": {"width": 3}},
        "search_space": {"width": {"type": "choice", "values": [1, 2]}},
    },
    "max on val_acc": {
        "name": "acc",
        "data": {"source": "digits", "label": "label"},
        "model": {"kind": "mlp"},
        "metric": "val_acc",
        "mode": "max",
    },
}


@pytest.mark.parametrize("raw", GOOD.values(), ids=GOOD.keys())
def test_good_studies_validate(raw):
    assert isinstance(parse_study(raw), StudyConfig)


@pytest.mark.parametrize("raw", GOOD.values(), ids=GOOD.keys())
def test_good_studies_pass_the_json_schema_too(raw):
    import jsonschema  # the test extra installs it: a missing one is an error, not a skip

    validator = jsonschema.Draft202012Validator(StudyConfig.model_json_schema())
    assert [e.message for e in validator.iter_errors(raw)] == []


def test_digits_example_parses_with_its_settings():
    study = load_study(REPO / "examples" / "digits.yaml")
    assert study.name == "digits-mlp"
    assert study.model.kind == "mlp"
    assert study.search_space["lr"].type == "loguniform"
    assert study.search_space["lr"].low == pytest.approx(1e-4)
    assert study.data.test_fraction == pytest.approx(0.1)


def test_model_without_kind_but_with_factory_is_custom():
    study = parse_study(
        {"name": "c", "data": {"source": "d", "label": "y"}, "model": {"factory": "a.b:c"}}
    )
    assert study.model.kind == "custom"


def test_long_values_are_shortened_in_the_message():
    raw = {"name": "x" * 500, "data": {"source": "d", "label": "y"}, "model": {"kind": "mlp"}}
    with pytest.raises(StudyFileError) as info:
        parse_study(raw)
    (line,) = info.value.problems
    got = LINE.match(line)["got"]
    assert line.startswith("name: ")
    assert len(got) == 60 and got.endswith("...")


def test_search_space_domain_shown_as_written_not_as_pydantic_repr():
    raw = yaml.safe_load((BAD[0].parent / "search_key_not_a_setting.yaml").read_text())
    with pytest.raises(StudyFileError) as info:
        parse_study(raw)
    assert "(got {'type': 'choice', 'values': [64, 128]})" in info.value.problems[0]


def test_mistyped_domain_type_gives_one_line_not_unknown_key_noise():
    raw = yaml.safe_load((BAD[0].parent / "bad_domain_type.yaml").read_text())
    with pytest.raises(StudyFileError) as info:
        parse_study(raw)
    assert info.value.problems == [
        "search_space.lr.type: must be 'uniform', 'loguniform', 'quniform', 'randint', 'qrandint', "
        "'lograndint', 'choice' or 'grid' (got 'logunifrom')"
    ]


@pytest.mark.parametrize("batch", [True, 0, -16, 2.5, "32"])
def test_search_space_batch_size_must_be_positive_int(batch):
    raw = {
        "name": "b",
        "data": {"source": "d", "label": "y"},
        "model": {"kind": "mlp"},
        "search_space": {"batch_size": {"type": "grid", "values": [16, batch]}},
    }
    with pytest.raises(StudyFileError) as info:
        parse_study(raw)
    assert info.value.problems == [
        f"search_space.batch_size: batch sizes are positive integers (got {batch!r})"
    ]


@pytest.mark.parametrize("raw", [[1, 2], "name: x", 3, None])
def test_parse_study_rejects_non_mappings(raw):
    with pytest.raises(StudyFileError, match="a study file is a YAML mapping"):
        parse_study(raw, source="s.yaml")


def test_numbers_in_exponent_form_are_numbers_not_strings(tmp_path):
    # PyYAML (YAML 1.1) alone reads 1e-3 as the string '1e-3'; a choice of rates would reach
    # the trial as text and a dropout of '1e-1' would crash the model's constructor.
    path = tmp_path / "s.yaml"
    path.write_text(
        "name: '1e-3'\ndata: {source: digits, label: label}\nmodel: {kind: mlp}\n"  # quoted: text
        "train: {lr: 1e-3}\n"
        "search_space:\n"
        "  dropout: {type: choice, values: [0, 1e-1, 2.5E-1]}\n"
        "  weight_decay: 1e-4\n"
    )
    study = load_study(path)
    assert study.train.lr == 1e-3
    assert study.search_space["dropout"].values == [0, 0.1, 0.25]
    assert study.search_space["weight_decay"] == 1e-4
    assert study.name == "1e-3"


# ---------------------------------------------------------------- the JSON Schema agrees


SCHEMA_REFUSES = {  # each refused by validate too (field path named)
    "loguniform-low-0": ({"lr": {"type": "loguniform", "low": 0, "high": 0.1}}, "search_space.lr"),
    "dropout-range-to-1.5": (
        {"dropout": {"type": "uniform", "low": 0.0, "high": 1.5}},
        "search_space.dropout",
    ),
    "dropout-choice-1": (
        {"dropout": {"type": "choice", "values": [0.1, 1.0]}},
        "search_space.dropout",
    ),
    "momentum-constant-1": ({"momentum": 1.0}, "search_space.momentum"),
    "width-0": (
        {"hidden_width": {"type": "choice", "values": [0, 8]}},
        "search_space.hidden_width",
    ),
}


MINIMAL = {
    "name": "m",
    "data": {"source": "digits", "label": "label"},
    "model": {"kind": "mlp"},
}


def _schema_validator():
    jsonschema = pytest.importorskip("jsonschema")
    from tunepipe.config.schema import study_json_schema

    schema = study_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("space", SCHEMA_REFUSES.values(), ids=SCHEMA_REFUSES.keys())
def test_the_json_schema_refuses_what_validate_refuses(space):
    validator = _schema_validator()
    raw = {**MINIMAL, "search_space": space[0]}
    assert list(validator.iter_errors(raw)), "the schema let it through"
    with pytest.raises(StudyFileError, match=space[1].replace(".", r"\.")):
        parse_study(raw)


def test_the_json_schema_and_validate_accept_the_same_edges():
    validator = _schema_validator()
    good = {
        "$schema": "./tunepipe-study.schema.json",  # editors find the schema through it
        **MINIMAL,
        "search_space": {
            "dropout": {"type": "uniform", "low": 0.0, "high": 0.9},
            "lr": {"type": "loguniform", "low": 1e-5, "high": 1.0},
            "hidden_width": {"type": "choice", "values": [8, 64]},
        },
    }
    assert [e.message for e in validator.iter_errors(good)] == []
    assert parse_study(good).schema_ref == "./tunepipe-study.schema.json"
    # A custom model's own arguments are its business: neither refuses a "dropout" of 1.5.
    custom = {
        **good,
        "model": {"factory": "nets:make"},  # custom, kind left out
        "search_space": {"dropout": {"type": "uniform", "low": 0.0, "high": 1.5}},
    }
    assert [e.message for e in validator.iter_errors(custom)] == []
    assert parse_study(custom).search_space["dropout"].high == 1.5
