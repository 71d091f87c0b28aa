"""`lr: auto` beyond digits: the LR range test's suggestion trains regression, binary and
multi-class MLPs with Adam and with SGD (the sanity stage's own overfit check passes at it)."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

import tunepipe
from tunepipe.config import DataConfig, PlaybookConfig
from tunepipe.data import prepare_arrays
from tunepipe.playbook.init_loss import initial_loss_check
from tunepipe.playbook.overfit import overfit_check, overfit_run
from tunepipe.playbook.sanity import _lr_range
from tunepipe.playbook.trial import chance_loss, set_up
from tunepipe.study import parse_study

DIGITS = f"{tunepipe.__file__.rsplit('/', 1)[0]}/data/builtin/digits.parquet"


def digits_task(task: str):
    """Digits as multi-class, binary (digit >= 5), or regression (the mean of 8 pixels x100
    plus noise, those pixels dropped from the features: issue 9's failing case)."""
    table = pq.read_table(DIGITS)
    x = np.stack([c.to_numpy() for c in table.drop(["label"]).columns], 1).astype(np.float32)
    label = table.column("label").to_numpy()
    if task == "classification":
        y = label
    elif task == "binary":
        y = (label >= 5).astype(np.int64)
    else:
        rng = np.random.default_rng(0)
        pixels = rng.choice(x.shape[1], 8, replace=False)
        y = (x[:, pixels].mean(1) * 100 + rng.normal(0, 20, len(x))).astype(np.float32)
        x = np.delete(x, pixels, axis=1)
    cfg = DataConfig(source="digits", label="y", val_fraction=0.2)
    return prepare_arrays(x, y, cfg, task, seed=0)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("task", ["regression", "binary", "classification"])
def test_suggested_lr_trains_and_the_init_sits_at_chance(task, optimizer):
    data = digits_task(task)
    study = parse_study(
        {
            "name": "s",
            "task": task,
            "data": {"source": "digits", "label": "label"},
            "model": {"kind": "mlp", "hidden_width": 64, "depth": 2},
            "train": {"optimizer": optimizer, "batch_size": 64},
            "search_space": {"lr": "auto"},
        }
    )
    r = _lr_range(study, data, {})
    assert r.suggested_lr is not None, r.losses
    assert r.min_loss_lr / 100 <= r.suggested_lr <= r.min_loss_lr / 10
    assert r.suggested_range[0] < r.suggested_lr < r.suggested_range[1]
    setup = set_up(study, data, {"lr": r.suggested_lr})
    assert initial_loss_check(setup, data, study.data).status == "pass"  # I1: no warning
    settings = PlaybookConfig(overfit_samples=64, overfit_steps=600)
    run = overfit_run(setup, data, settings, chance_loss(data))
    assert overfit_check(run).status == "pass", (r.suggested_lr, run.losses[-5:])
