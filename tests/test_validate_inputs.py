"""`tunepipe validate` refuses what `run` would refuse later: data, columns, code, int domains."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from tests.conftest import study_dict, tunepipe_cli
from tunepipe.study import parse_study


def write(folder: Path, model: dict | None = None, **overrides) -> Path:
    raw = study_dict(**overrides)
    raw["model"] = model or raw["model"]  # replaced, not merged: a custom model has no width
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def errors(path: Path) -> list[str]:
    proc = tunepipe_cli("validate", str(path))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    return [line for line in proc.stderr.splitlines() if line.startswith("error: ")]


@pytest.fixture
def table(tmp_path: Path) -> Path:
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"x1": [0.0, 1.0], "x2": [1.0, 0.0], "target": [0, 1]}), path)
    return path


def test_missing_data_file_and_wrong_columns_name_the_field(tmp_path, table):
    missing = errors(write(tmp_path, data={"source": "nope.parquet"}))
    assert len(missing) == 1 and missing[0].startswith("error: data.source: ")
    assert str(tmp_path / "nope.parquet") in missing[0] and "does not exist" in missing[0]
    bad = errors(write(tmp_path, data={"source": "rows.parquet", "label": "taget"}))
    assert bad == [
        f"error: data.label: column 'taget' is not in {table} (did you mean 'target'?); "
        "its columns: x1, x2, target"
    ]
    feats = errors(
        write(tmp_path, data={"source": "rows.parquet", "label": "target", "features": ["x3"]})
    )
    assert len(feats) == 1 and feats[0].startswith("error: data.features: column 'x3'")
    csv = tmp_path / "rows.csv"
    csv.write_text("a,b,label\n1,2,0\n")
    ok = tunepipe_cli("validate", str(write(tmp_path, data={"source": "rows.csv"})))
    assert ok.returncode == 0, ok.stderr


def test_code_is_found_on_disk_without_running_it(tmp_path):
    code = tmp_path / "mycode"
    code.mkdir()
    # Running this module would raise: validate must only read it.
    (code / "nets.py").write_text(
        "raise SystemExit(9)\n\n\ndef tiny(input_shape, output_dim):\n    return None\n"
    )
    model = {"kind": "custom", "factory": "nets:tiny"}
    ok = tunepipe_cli("validate", str(write(tmp_path, model=model, code_dir="mycode")))
    assert ok.returncode == 0, ok.stderr
    wrong_attr = errors(write(tmp_path, model={**model, "factory": "nets:huge"}, code_dir="mycode"))
    assert len(wrong_attr) == 1 and "model.factory: " in wrong_attr[0]
    assert "defines no 'huge'" in wrong_attr[0]
    no_dir = errors(write(tmp_path, model=model))
    assert len(no_dir) == 1 and "model.factory: no module 'nets'" in no_dir[0]
    assert "set code_dir" in no_dir[0]
    trainable = {"trainable": "missing_mod:fn", "data": None, "model": None}
    raw = {k: v for k, v in study_dict(**trainable).items() if v is not None}
    (tmp_path / "own.yaml").write_text(yaml.safe_dump(raw))
    own = errors(tmp_path / "own.yaml")
    assert len(own) == 1 and own[0].startswith("error: trainable: no module 'missing_mod'")


def test_integer_settings_take_integer_domains_and_the_count_is_what_ray_runs(tmp_path):
    space = {
        "batch_size": {"type": "randint", "low": 16, "high": 129},
        "hidden_width": {"type": "qrandint", "low": 32, "high": 256, "q": 32},
        "depth": {"type": "lograndint", "low": 1, "high": 4},
        "optimizer": {"type": "grid", "values": ["adam", "sgd"]},
    }
    study = parse_study(study_dict(search_space=space, num_samples=3))
    from tunepipe.engine.space import to_tune_space
    from tunepipe.playbook.points import largest_config

    assert largest_config(study)["hidden_width"] == 256 and largest_config(study)["depth"] == 3
    sampled = to_tune_space(study)
    assert type(sampled["hidden_width"]).__name__ == "Integer"
    proc = tunepipe_cli("validate", str(write(tmp_path, search_space=space, num_samples=3)))
    assert proc.returncode == 0, proc.stderr
    assert "6 trials (2 grid points x 3)" in proc.stdout
