"""The divergence rule's "loss before training" is sane: the measured loss only when the
initial-loss check passed and it is finite, else the chance-level loss, from one definition."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tunepipe.config import DataConfig
from tunepipe.data import prepare_arrays
from tunepipe.playbook.result import Check, SanityResult
from tunepipe.playbook.trial import chance_loss


def result(status: str, measured: float | None) -> SanityResult:
    return SanityResult([Check("initial loss", status, "")], initial_loss=measured)


def test_the_measured_loss_serves_only_when_its_check_passed_and_it_is_finite():
    assert result("pass", 2.31).divergence_reference(2.30) == (
        2.31,
        "the loss measured before training, 2.31",
    )
    value, words = result("warn", 4.49).divergence_reference(math.log(10))
    assert value == math.log(10) and "initial-loss check warned on the measured 4.49" in words
    value, words = result("pass", math.inf).divergence_reference(1.0)
    assert value == 1.0 and "not finite" in words
    value, words = result("pass", None).divergence_reference(1.0)
    assert value == 1.0 and "none was measured" in words


@pytest.mark.parametrize("standardize", [True, False])
def test_one_chance_loss_for_regression_the_targets_variance(standardize):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(300, 4)), rng.normal(5.0, 3.0, size=300)
    cfg = DataConfig(source="x", label="y", standardize_targets=standardize)
    data = prepare_arrays(x.astype(np.float32), y.astype(np.float32), cfg, "regression", seed=0)
    train_var = float(np.var(data.train.y))
    assert data.chance_loss() == pytest.approx(train_var) == chance_loss(data)
    assert (train_var == pytest.approx(1.0, abs=1e-3)) is standardize
    from tunepipe.engine.schedule import expected_initial_loss
    from tunepipe.study import parse_study

    study = parse_study(
        {"name": "r", "task": "regression", "data": cfg.model_dump(), "model": {"kind": "mlp"}}
    )
    assert expected_initial_loss(study, data) == pytest.approx(train_var)
