"""The CLI on files that are not study files at all, on the example, and `tunepipe schema`.

Every bad file gives one clear line on stderr and exit code 2, never a traceback (house style 5);
`--debug` shows the traceback. validate and schema load neither Ray nor torch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import tunepipe_cli

REPO = Path(__file__).resolve().parents[1]
DIGITS = REPO / "examples" / "digits.yaml"
GOOD_BODY = "name: t\ndata: {source: digits, label: label}\nmodel: {kind: mlp}\n"


tunepipe = tunepipe_cli


def one_error_line(result: subprocess.CompletedProcess, starts: str) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: {starts}: "), lines[0]
    return lines[0]


# name -> (file content, text the single error line must contain)
FILES: dict[str, tuple[bytes, str]] = {
    "empty": (b"", "the file is empty"),
    "whitespace_only": (b"  \n\n\t\n", "the file is empty"),
    "not_yaml_flow": (
        b"name: t\ndata: {source: digits\nmodel: {kind: mlp}\n",
        "not valid YAML at line 3, column 6",
    ),
    "not_yaml_tab": (b"name: t\n\tdata: 3\n", "not valid YAML at line 2, column 1"),
    "not_yaml_two_documents": (GOOD_BODY.encode() + b"---\nname: u\n", "not valid YAML at line 4"),
    "a_list": (b"- name: t\n- data: digits\n", "holds list"),
    "a_scalar_int": (b"42\n", "holds int"),
    "a_sentence": (b"train the digits please\n", "holds str"),
    "only_a_comment": (b"# name: t\n", "holds nothing"),
    "random_bytes": (np.random.default_rng(7).bytes(256), "not a text file"),
    "png_header": (
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10",
        "not a text file (byte 0",
    ),
    "nul_bytes": (b"name: t\x00\x00\ndata: x\n", "holds NUL bytes"),
    "control_character": (b"name: t\x07\n", "not valid YAML"),
    "duplicate_key": (
        GOOD_BODY.encode() + b"search_space:\n  lr: 0.1\n  lr: {type: uniform, low: 0, high: 1}\n",
        "key 'lr' is given twice (first at line 5)",
    ),
    "too_big": (b"# " + b"x" * (1 << 20) + b"\n" + GOOD_BODY.encode(), "far too big"),
}


@pytest.fixture(scope="module")
def file_results(tmp_path_factory) -> dict[str, tuple[Path, subprocess.CompletedProcess]]:
    """Write every bad file, then run `tunepipe validate` on them a few at a time."""
    from concurrent.futures import ThreadPoolExecutor

    folder = tmp_path_factory.mktemp("files")
    paths = {}
    for name, (content, _) in FILES.items():
        paths[name] = folder / f"{name}.yaml"
        paths[name].write_bytes(content)
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        runs = pool.map(lambda p: tunepipe("validate", str(p)), paths.values())
        return {name: (paths[name], result) for name, result in zip(paths, runs, strict=True)}


@pytest.mark.parametrize("name", FILES)
def test_bad_file_one_clear_line_exit_2(name, file_results):
    path, result = file_results[name]
    line = one_error_line(result, str(path))
    assert FILES[name][1] in line


def test_missing_file(tmp_path):
    line = one_error_line(
        tunepipe("validate", "no/such/study.yaml", cwd=tmp_path), "no/such/study.yaml"
    )
    assert "no such file" in line and str(tmp_path) in line  # says where it looked


def test_folder_instead_of_file(tmp_path):
    assert "is a folder" in one_error_line(tunepipe("validate", str(tmp_path)), str(tmp_path))


def test_debug_shows_the_traceback(tmp_path):
    result = tunepipe("--debug", "validate", str(tmp_path / "missing.yaml"))
    assert result.returncode != 0
    assert "Traceback" in result.stderr
    assert "StudyFileError" in result.stderr


def test_validation_errors_go_through_the_cli_with_exit_2(tmp_path):
    study = tmp_path / "s.yaml"
    study.write_text(GOOD_BODY + "seed: -1\nnum_samples: 0\n")
    result = tunepipe("validate", str(study))
    assert result.returncode == 2
    assert sorted(result.stderr.splitlines()) == [
        "error: num_samples: input should be greater than or equal to 1 (got 0)",
        "error: seed: input should be greater than or equal to 0 (got -1)",
    ]


@pytest.mark.parametrize(
    "args, says",
    [
        (["bogus"], "No such command 'bogus'"),
        (["validate"], "Missing argument"),
        (["validate", str(DIGITS), "--what"], "No such option"),
    ],
)
def test_usage_errors_exit_2_without_internal_error(args, says):
    result = tunepipe(*args)
    assert result.returncode == 2
    assert says in result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr


# ---------------------------------------------------------------- the example and the schema


def test_validate_digits_prints_one_summary_line():
    result = tunepipe("validate", str(DIGITS))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    (line,) = result.stdout.splitlines()
    assert line.startswith(f"{DIGITS}: valid")
    for part in (
        "'digits-mlp'",
        "classification",
        "mlp on digits",
        "5 hyperparameters",
        "20 trials",
    ):
        assert part in line


def test_python_dash_m_tunepipe_cli_also_runs():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "tunepipe.cli", "validate", str(DIGITS)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0 and ": valid" in result.stdout


def test_schema_is_json_schema_the_example_validates_against(tmp_path):
    import jsonschema  # the test extra installs it: a missing one is an error, not a skip

    result = tunepipe("schema")
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    example = yaml.safe_load(DIGITS.read_text())
    assert list(validator.iter_errors(example)) == []
    # and it does reject things: an unknown key and a bad literal
    assert list(validator.iter_errors({**example, "serach_space": {}}))
    assert list(validator.iter_errors({**example, "task": "multiclass"}))
    # and agrees with tunepipe: a model without kind is an MLP; a domain needs its bounds
    assert list(validator.iter_errors({**example, "model": {"depth": 3}})) == []
    assert list(validator.iter_errors({**example, "search_space": {"lr": {"type": "uniform"}}}))


PROBE = textwrap.dedent(
    """
    import json, sys, time
    t0 = time.perf_counter()
    from tunepipe.cli import main
    sys.argv = ["tunepipe", *sys.argv[1:]]
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    else:
        code = 0
    elapsed = time.perf_counter() - t0
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("ray", "torch"))
    print(json.dumps({"code": code, "elapsed": elapsed, "heavy": heavy}), file=sys.stderr)
    """
)


@pytest.mark.parametrize(
    "args", [["validate", str(DIGITS)], ["schema"]], ids=["validate", "schema"]
)
def test_validate_and_schema_import_neither_ray_nor_torch(args):
    # Their speed (under 1 s) is measured by benchmarks/cli_latency.py, not asserted: a timed
    # assertion fails on a loaded machine while proving nothing about the code.
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=env, timeout=60
    )
    report = json.loads(result.stderr.splitlines()[-1])
    assert report["code"] in (0, None)
    assert report["heavy"] == []  # Ray alone takes seconds to import


def test_unreadable_file_is_a_study_file_error(tmp_path, monkeypatch):
    # (tests may run as root, where chmod 000 does not stop reading: simulate the OS refusing)
    from tunepipe.errors import StudyFileError
    from tunepipe.study import load_study

    path = tmp_path / "locked.yaml"
    path.write_text(GOOD_BODY)

    def refuse(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(StudyFileError, match=r"locked.yaml: cannot read it \(Permission denied\)"):
        load_study(path)
