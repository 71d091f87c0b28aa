"""The sanity stage's parts on plain numbers and tiny tensors: LR range advice, points of the
space, data checks, the overfit and gradient checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tunepipe.config import DataConfig
from tunepipe.data import prepare_arrays
from tunepipe.playbook.data_checks import balance_check, leakage_check, target_scale_check
from tunepipe.playbook.lr_range import lr_range_test, suggest
from tunepipe.playbook.points import largest_config, lr_of, typical_config
from tunepipe.study import parse_study

# ------------------------------------------------------------------ LR range test


def valley(lrs: np.ndarray) -> np.ndarray:
    """A textbook range-test curve: flat, falls between 1e-4 and 1e-2, explodes after 1e-1."""
    x = np.log10(lrs)
    return 2.0 - 1.5 / (1 + np.exp(-3 * (x + 3))) + np.exp(4 * (x + 1))


def test_suggest_on_a_textbook_curve():
    lrs = np.logspace(-7, 1, 100)
    loss = valley(lrs)
    suggested, (lo, hi), min_lr, steep = suggest(lrs, loss)
    assert min_lr == pytest.approx(lrs[np.argmin(loss)])
    assert steep == pytest.approx(1e-3, rel=0.25)  # the sigmoid's steepest point
    assert min_lr / 100 <= suggested <= min_lr / 10
    assert lo == pytest.approx(suggested / 10) and hi == min_lr
    assert lo < suggested < hi


def test_suggest_ignores_a_steep_noisy_start():
    # A regression MLP's first steps: the loss drops fast by noise at 1e-7..1e-6, far below any
    # rate that trains; the old steepest-point rule suggested 2.5e-7 there.
    lrs = np.logspace(-7, 1, 100)
    loss = valley(lrs)
    loss[5:12] -= np.linspace(0.0, 0.4, 7)
    suggested, (lo, hi), min_lr, _ = suggest(lrs, loss)
    assert min_lr / 100 <= suggested <= min_lr / 10 and suggested > 1e-5


def test_suggest_gives_nothing_when_the_loss_never_falls():
    lrs = np.logspace(-7, 1, 50)
    assert suggest(lrs, np.full(50, 2.3))[:2] == (None, None)
    assert suggest(lrs[:3], np.array([1.0, 0.5, 0.2]))[:2] == (None, None)  # too short


def test_lr_range_test_on_a_tiny_problem():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(512, 8, generator=gen)
    y = (x[:, :3].sum(dim=1) > 0).long()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
    opt = torch.optim.Adam(model.parameters())
    r = lr_range_test(
        model, opt, torch.nn.CrossEntropyLoss(), x, y, batch_size=32, steps=100, generator=gen
    )
    lo, hi = r.suggested_range
    assert lo < r.suggested_lr < hi
    assert 1e-5 < r.suggested_lr < 1.0
    smoothed = [s for s in r.smoothed if math.isfinite(s)]
    assert len(r.lrs) < 100 or smoothed[-1] > 4 * min(smoothed)  # stopped at divergence


# ------------------------------------------------------------------ points of the space


def study(space: dict, model: dict | None = None, **extra):
    return parse_study(
        {
            "name": "s",
            "data": {"source": "digits", "label": "label"},
            "model": model or {"kind": "mlp", "hidden_width": 128},
            "search_space": space,
            **extra,
        }
    )


def test_typical_point_is_the_middle_in_each_domain_scale():
    s = study(
        {
            "lr": {"type": "loguniform", "low": 1e-4, "high": 1e-2},
            "dropout": {"type": "uniform", "low": 0.0, "high": 0.4},
            "hidden_width": {"type": "choice", "values": [64, 128, 256, 512]},
            "depth": {"type": "randint", "low": 1, "high": 4},
        }
    )
    point = typical_config(s)
    assert point["lr"] == pytest.approx(1e-3)
    assert point["dropout"] == pytest.approx(0.2)
    assert point["hidden_width"] == 128  # the study's own setting, offered by the choice
    assert point["depth"] == 2


def test_largest_point_is_the_biggest_model_without_regularisation():
    s = study(
        {
            "hidden_width": {"type": "choice", "values": [512, 64]},
            "depth": {"type": "randint", "low": 1, "high": 4},
            "dropout": {"type": "uniform", "low": 0.1, "high": 0.5},
            "weight_decay": {"type": "loguniform", "low": 1e-5, "high": 1e-3},
        }
    )
    point = largest_config(s)
    assert (point["hidden_width"], point["depth"]) == (512, 3)  # randint's high is exclusive
    assert point["dropout"] == 0.0 and point["weight_decay"] == 0.0
    cnn = study(
        {"channels": {"type": "choice", "values": [[16, 32], [8, 16, 32], [32, 64]]}},
        model={"kind": "cnn"},
        data={"source": "digits", "label": "label", "image_shape": [1, 8, 8]},
    )
    assert largest_config(cnn)["channels"] == [32, 64]  # the most weights, not the deepest


def test_lr_of_constant_range_and_auto():
    assert lr_of(study({"lr": 1e-8})) == 1e-8
    assert lr_of(study({})) == 3e-4  # train.lr's default
    assert lr_of(study({"lr": {"type": "loguniform", "low": 1e-4, "high": 1e-2}})) == pytest.approx(
        1e-3
    )
    assert lr_of(study({"lr": "auto"}), suggested=0.02) == 0.02


# ------------------------------------------------------------------ data checks


def prepared(x, y, task="classification", **cfg):
    cfg = DataConfig(source="x", label="y", val_fraction=0.25, **cfg)
    return prepare_arrays(np.asarray(x, np.float32), np.asarray(y), cfg, task, seed=0)


def test_leakage_counts_validation_rows_that_are_training_rows():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5))
    y = rng.integers(0, 2, 200)
    assert leakage_check(prepared(x, y)).status == "pass"
    twice = leakage_check(prepared(np.vstack([x, x]), np.concatenate([y, y])))
    assert twice.status == "fail"  # the file concatenated with itself
    assert twice.values["val_in_train"] > 50


def test_class_balance_warns_on_heavy_imbalance():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(440, 3))
    balanced = balance_check(prepared(x, np.arange(440) % 2))
    skewed = balance_check(prepared(x, (np.arange(440) % 22 == 0).astype(int)))
    assert balanced.status == "pass" and skewed.status == "warn"
    assert skewed.values["ratio"] >= 10


def test_target_scale_fails_only_for_large_unstandardised_targets():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 3))
    big = (1e4 + 100 * rng.normal(size=(100, 1))).astype(np.float32)
    assert target_scale_check(prepared(x, big, "regression"), True).status == "pass"
    raw = prepared(x, big, "regression", standardize_targets=False)
    check = target_scale_check(raw, False)
    assert check.status == "fail" and "targets not standardised" in check.detail
    small = prepared(x, rng.normal(size=(100, 1)), "regression", standardize_targets=False)
    assert target_scale_check(small, False).status == "pass"


# ------------------------------------------------------------------ overfit and gradients


def test_overfit_and_gradient_checks_on_a_tiny_net():
    from tunepipe.config import PlaybookConfig
    from tunepipe.playbook.overfit import gradient_check, overfit_check, overfit_run
    from tunepipe.playbook.trial import chance_loss, set_up

    rng = np.random.default_rng(0)
    data = prepared(rng.normal(size=(200, 6)), rng.integers(0, 3, 200))
    s = study({}, model={"kind": "mlp", "hidden_width": 64})
    settings = PlaybookConfig(overfit_samples=32, overfit_steps=300)
    good = overfit_run(set_up(s, data, {"lr": 1e-2}), data, settings, chance_loss(data))
    assert overfit_check(good).status == "pass" and gradient_check(good).status == "pass"
    assert good.final < good.target < good.initial

    frozen = set_up(s, data, {"lr": 1e-2})
    frozen.model[1][0].weight.requires_grad_(False)  # the first layer's weights only
    run = overfit_run(frozen, data, settings, chance_loss(data))
    check = gradient_check(run)
    assert check.status == "warn" and "1.0.weight" in check.causes[0]


def test_a_diverging_overfit_run_blames_a_too_high_rate():
    from tunepipe.config import PlaybookConfig
    from tunepipe.playbook.overfit import overfit_check, overfit_run
    from tunepipe.playbook.trial import chance_loss, set_up

    rng = np.random.default_rng(0)
    data = prepared(rng.normal(size=(200, 6)), rng.integers(0, 3, 200))
    s = study({}, model={"kind": "mlp", "hidden_width": 64})
    settings = PlaybookConfig(overfit_samples=32, overfit_steps=100)
    run = overfit_run(set_up(s, data, {"lr": 50.0}), data, settings, chance_loss(data))
    check = overfit_check(run)
    assert run.diverged and check.status == "fail"
    assert check.causes[0].startswith("learning rate too high (lr=50)")


def test_a_slow_but_falling_overfit_run_blames_a_low_rate():
    from tunepipe.config import PlaybookConfig
    from tunepipe.playbook.overfit import overfit_check, overfit_run
    from tunepipe.playbook.trial import chance_loss, set_up

    rng = np.random.default_rng(0)
    data = prepared(rng.normal(size=(200, 6)), rng.integers(0, 3, 200))
    s = study({}, model={"kind": "mlp", "hidden_width": 16, "depth": 1})
    settings = PlaybookConfig(overfit_samples=32, overfit_steps=150)
    run = overfit_run(set_up(s, data, {"lr": 3e-4}), data, settings, chance_loss(data))
    check = overfit_check(run)
    assert check.status == "fail" and run.final < 0.95 * run.initial  # it learns, slowly
    assert check.causes[0].startswith("learning rate too low")  # either wording blames the rate
