"""Broken studies stop at the sanity stage (exit code 1) in seconds, naming the cause.

Each study is run through the console entry point, in-process, as a user would run
`tunepipe sanity STUDY`; the assertions read the error lines it prints.
"""

from __future__ import annotations

import json
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

LIMIT_S = 30  # a broken study must fail fast: before any search is paid for


def sanity_cli(study: Path, capsys) -> tuple[int, str, dict, float]:
    """(exit code, stderr, sanity.json, seconds) of `tunepipe sanity STUDY --out DIR`."""
    from tunepipe.cli import main

    out = study.parent / "out"
    argv, sys.argv = sys.argv, ["tunepipe", "sanity", str(study), "--out", str(out)]
    t0 = time.monotonic()
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        sys.argv = argv
    seconds = time.monotonic() - t0
    err = capsys.readouterr().err
    print(f"\n{study.stem}: exit {code} in {seconds:.1f} s\n{err}")
    return code, err, json.loads((out / "sanity.json").read_text()), seconds


def statuses(doc: dict) -> dict[str, str]:
    return {c["name"]: c["status"] for c in doc["checks"]}


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def test_lr_fixed_at_1e8_fails_the_overfit_check(tmp_path, capsys):
    study = write(
        tmp_path / "tiny_lr.yaml",
        """
        name: tiny-lr
        data: {source: digits, label: label}
        model: {kind: mlp, depth: 2}
        search_space:
          lr: 1.0e-8
          hidden_width: {type: choice, values: [32, 64]}
        """,
    )
    code, err, doc, seconds = sanity_cli(study, capsys)
    assert code == 1 and seconds < LIMIT_S
    assert statuses(doc)["overfit tiny subset"] == "fail"
    assert "learning rate too low (lr=1e-08)" in err
    overfit = next(c for c in doc["checks"] if c["name"] == "overfit tiny subset")
    assert "hidden_width=64" in overfit["detail"]  # P1: the largest model the space allows


def test_unstandardised_regression_targets_fail_naming_p2(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    y = 1e4 + 2e3 * (x @ rng.normal(size=4)).astype(np.float32)  # targets around 10^4
    table = {f"f{i}": x[:, i] for i in range(4)} | {"price": y}
    pq.write_table(pa.table(table), tmp_path / "houses.parquet")
    study = write(
        tmp_path / "reg.yaml",
        """
        name: reg
        task: regression
        data: {source: houses.parquet, label: price, standardize_targets: false}
        model: {kind: mlp, hidden_width: 32}
        """,
    )
    code, err, doc, seconds = sanity_cli(study, capsys)
    assert code == 1 and seconds < LIMIT_S
    assert statuses(doc)["target scale"] == "fail"
    assert "targets not standardised" in err and "standardize_targets: true" in err


FACTORY = """
import math
from torch import nn


class Detached(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x).detach()  # the bug: no gradient reaches the parameters


def make(input_shape, output_dim, bug="frozen"):
    net = nn.Sequential(
        nn.Flatten(), nn.Linear(math.prod(input_shape), 32), nn.ReLU(), nn.Linear(32, output_dim)
    )
    if bug == "frozen":
        for p in net.parameters():
            p.requires_grad_(False)
        return net
    return Detached(net)
"""


@pytest.mark.parametrize(
    ("bug", "cause"),
    [
        ("frozen", "frozen parameters (requires_grad=False): 1.weight, 1.bias, 3.weight"),
        ("detached", "output is detached from its parameters"),
    ],
)
def test_custom_model_without_gradients_fails_naming_them(tmp_path, capsys, bug, cause):
    code_dir = tmp_path / "code"
    code_dir.mkdir()
    module = f"broken_factory_{bug}"  # a fresh module name per test: imports are cached
    (code_dir / f"{module}.py").write_text(FACTORY)
    study = write(
        tmp_path / f"{bug}.yaml",
        f"""
        name: {bug}
        code_dir: code
        data: {{source: digits, label: label}}
        model: {{kind: custom, factory: "{module}:make", args: {{bug: {bug}}}}}
        """,
    )
    code, err, doc, seconds = sanity_cli(study, capsys)
    assert code == 1 and seconds < LIMIT_S
    assert statuses(doc)["gradient flow"] == "fail"
    assert statuses(doc)["overfit tiny subset"] == "fail"
    assert cause in err
