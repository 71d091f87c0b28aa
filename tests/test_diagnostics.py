"""Per-epoch diagnostics: present in every report of a trial, sane, and exact where computable."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from tunepipe.config import DataConfig
from tunepipe.data import prepare_arrays
from tunepipe.study import parse_study
from tunepipe.train.diagnostics import Diagnostics
from tunepipe.train.loop import run_trial

DIAGNOSTICS = ("grad_norm", "update_ratio", "top_prob", "dead_relu")


def tiny(task: str, n: int = 240, classes: int = 3):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    score = x[:, :2].sum(axis=1)
    y = {
        "classification": np.digitize(score, np.quantile(score, [1 / 3, 2 / 3])),
        "binary": (score > 0).astype(int),
        "regression": score[:, None],
    }[task]
    cfg = DataConfig(source="x", label="y")
    data = prepare_arrays(x, np.asarray(y), cfg, task, seed=0)
    study = parse_study(
        {
            "name": "tiny",
            "task": task,
            "data": {"source": "x", "label": "y"},
            "model": {"kind": "mlp", "hidden_width": 16},
            "train": {"batch_size": 16},
            "scheduler": {"kind": "fifo", "max_epochs": 4, "grace_period": 1},
        }
    )
    return data, study


def reports(task: str, lr: float = 1e-2) -> list[dict]:
    data, study = tiny(task)
    out: list[dict] = []
    run_trial({"lr": lr}, data, study, lambda metrics, ckpt: out.append(metrics))
    return out


def test_every_epoch_of_a_classifier_reports_sane_diagnostics():
    rows = reports("classification")
    assert len(rows) == 4
    for row in rows:
        assert set(DIAGNOSTICS) <= set(row)
        assert 0 < row["grad_norm"] < 100 and math.isfinite(row["grad_norm"])
        assert 1e-6 < row["update_ratio"] < 1  # L1: ~1e-3 healthy; never the whole weight
        assert 1 / 3 <= row["top_prob"] <= 1  # P4: at least uniform over 3 classes
        assert 0 <= row["dead_relu"] <= 1
    assert rows[-1]["top_prob"] > rows[0]["top_prob"]  # P4: it moves away from uniform


def test_binary_and_regression_report_what_applies():
    binary = reports("binary")[-1]
    assert 0.5 <= binary["top_prob"] <= 1
    regression = reports("regression")[-1]
    assert "top_prob" not in regression
    assert {"grad_norm", "update_ratio", "dead_relu"} <= set(regression)


def test_grad_norm_and_update_ratio_match_plain_sgd():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    lr = 0.05
    opt = torch.optim.SGD(model.parameters(), lr=lr)  # no momentum: Δw = -lr * g exactly
    probe = Diagnostics(model, opt, "classification")
    x, y = torch.randn(32, 4), torch.randint(0, 2, (32,))
    expected = {}
    for step in range(2):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        g = torch.cat([p.grad.reshape(-1) for p in model.parameters()]).norm().item()
        w = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).norm().item()
        expected[step] = (g, lr * g / w)
        opt.step()
    metrics = probe.epoch_metrics()
    assert metrics["grad_norm"] == pytest.approx(expected[0][0], rel=1e-5)  # step 0 is sampled
    assert metrics["update_ratio"] == pytest.approx(expected[0][1], rel=1e-4)  # epoch's first
    assert probe.epoch_metrics() == {}  # reset after each epoch


def test_adams_first_step_is_not_used_for_update_ratio():
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    probe = Diagnostics(model, opt, "classification")
    x, y = torch.randn(16, 4), torch.randint(0, 2, (16,))
    ratios = []
    for _ in range(2):
        before = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        after = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        ratios.append(((after - before).norm() / before.norm()).item())
    assert probe.epoch_metrics()["update_ratio"] == pytest.approx(ratios[1], rel=1e-4)


@pytest.mark.parametrize(("bias", "dead"), [(-1e3, 1.0), (1e3, 0.0)])
def test_dead_relu_counts_units_never_active_on_validation(bias, dead):
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    with torch.no_grad():
        model[0].bias.fill_(bias)
    probe = Diagnostics(model, torch.optim.SGD(model.parameters(), lr=0.1), "classification")
    with probe.validating(), torch.no_grad():
        model(torch.randn(64, 4))
    assert probe.epoch_metrics()["dead_relu"] == dead
    model(torch.randn(4, 4))  # outside `validating` the hooks are gone
    assert "dead_relu" not in probe.epoch_metrics()


def test_conv_channels_are_the_units():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))
    with torch.no_grad():
        model[0].bias.copy_(torch.tensor([-1e3, -1e3, -1e3, 1e3]))
    probe = Diagnostics(model, torch.optim.SGD(model[0].parameters(), lr=0.1), "classification")
    with probe.validating(), torch.no_grad():
        model(torch.randn(8, 1, 6, 6))
    assert probe.epoch_metrics()["dead_relu"] == pytest.approx(0.75)
