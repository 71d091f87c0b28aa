"""A saved model predicts what it was trained for: pandas-written data (its index is no
feature), a custom model factory loaded from another folder, columns matched by name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from tests.conftest import REPO, study_dict

pytestmark = pytest.mark.ray

FACTORY = """
import torch


def make(input_shape, output_dim, width=16):
    return torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(input_shape[0], width), torch.nn.ReLU(),
        torch.nn.Linear(width, output_dim),
    )
"""

CHECK = """
import json, sys
import numpy as np, pandas as pd
import tunepipe
model = tunepipe.load_model(sys.argv[1])
frame = pd.read_parquet(sys.argv[2]).drop(columns=["label"])
shuffled = frame[list(np.random.default_rng(0).permutation(frame.columns))]
same = model.predict(frame)
print(json.dumps({
    "names": model.feature_names,
    "same": same.tolist(),
    "shuffled": model.predict(shuffled).tolist(),
    "array": model.predict(frame.to_numpy()).tolist(),
    "labels": pd.read_parquet(sys.argv[2])["label"].tolist(),
}))
"""


def pandas_digits(folder: Path) -> Path:
    """The built-in digits written by pandas with a non-default index (kept as a column)."""

    import tunepipe

    table = pq.read_table(Path(tunepipe.__file__).parent / "data/builtin/digits.parquet")
    frame = table.to_pandas()
    # Not a RangeIndex (pandas keeps those as metadata only): stored as a column.
    frame.index = np.random.default_rng(0).permutation(len(frame)) * 7 + 1000
    path = folder / "digits.parquet"
    frame.to_parquet(path)  # index=None keeps a non-range index as __index_level_0__
    assert "__index_level_0__" in pq.read_schema(path).names
    return path


def test_custom_factory_run_loads_anywhere_and_predicts_by_column_name(tmp_path):
    study_dir = tmp_path / "study"
    (study_dir / "code").mkdir(parents=True)
    (study_dir / "code" / "mynets.py").write_text(textwrap.dedent(FACTORY))
    data = pandas_digits(study_dir)
    raw = study_dict(
        name="custom",
        data={"source": "digits.parquet", "label": "label"},
        code_dir="code",
        train={"lr": 0.01},
        scheduler={"max_epochs": 4},
        playbook={"sanity": False},
    )
    raw["model"] = {"kind": "custom", "factory": "mynets:make", "args": {"width": 32}}
    (study_dir / "study.yaml").write_text(yaml.safe_dump(raw))
    # As a user runs it: `tunepipe run` in its own process (its own embedded Ray).
    ran = subprocess.run(
        [
            sys.executable,
            "-m",
            "tunepipe",
            "run",
            "study.yaml",
            "--storage",
            str(tmp_path / "runs"),
        ],
        cwd=study_dir,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    run_dir = str(tmp_path / "runs" / "custom")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # A fresh interpreter in another folder: nothing of the study's code is on its path.
    done = subprocess.run(
        [sys.executable, "-c", CHECK, run_dir, str(data)],
        cwd=elsewhere,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(got["names"]) == 64 and "__index_level_0__" not in got["names"]  # never a feature
    assert got["shuffled"] == got["same"] == got["array"]
    assert np.mean(np.asarray(got["same"]) == np.asarray(got["labels"])) > 0.8
    first = pq.read_table(Path(run_dir) / "history.parquet").to_pylist()
    assert [h["epoch"] for h in first] == [1, 2, 3, 4]
