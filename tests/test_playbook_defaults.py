"""The defaults the playbook names reach the optimizer and the model a trial really trains:
Adam at 3e-4 (O1), momentum 0.9 (MO1), dropout on while training and off while validating (R1).

Each runs the real trial loop (`run_trial`, no Ray) on a toy problem and looks at the objects it
built, instead of at the config that should have produced them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tunepipe.data.prepare import prepare_arrays
from tunepipe.study import parse_study
from tunepipe.train import loop


def toy_study(train: dict | None = None, model: dict | None = None):
    return parse_study(
        {
            "name": "defaults",
            "data": {"source": "toy.parquet", "label": "y"},
            "model": {"kind": "mlp", "hidden_width": 64, "depth": 1, **(model or {})},
            "train": train or {},  # nothing given: the study file's defaults
            "scheduler": {"kind": "fifo", "max_epochs": 1, "grace_period": 1},
        }
    )


def toy_data(study):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.float64)
    return prepare_arrays(x, y, study.data, study.task, study.seed)


@pytest.fixture
def spy(monkeypatch):
    """Runs one trial and returns what it built: its optimizer and its dropout layers' calls."""
    seen: dict = {"optimizers": [], "dropout": []}
    phase = {"now": None}

    def make_optimizer(model, hp):
        opt = real_make_optimizer(model, hp)
        seen["optimizers"].append(opt)
        return opt

    def build_model(*args, **kwargs):
        model = real_build_model(*args, **kwargs)
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.register_forward_hook(
                    lambda mod, inp, out: seen["dropout"].append(
                        (phase["now"], mod.training, bool(torch.equal(inp[0], out)))
                    )
                )
        return model

    def in_phase(name, real):
        def wrapped(*args, **kwargs):
            phase["now"] = name
            try:
                return real(*args, **kwargs)
            finally:
                phase["now"] = None

        return wrapped

    real_make_optimizer, real_build_model = loop.make_optimizer, loop.build_model
    monkeypatch.setattr(loop, "make_optimizer", make_optimizer)
    monkeypatch.setattr(loop, "build_model", build_model)
    monkeypatch.setattr(loop, "train_epoch", in_phase("train", loop.train_epoch))
    monkeypatch.setattr(loop, "evaluate", in_phase("eval", loop.evaluate))

    def run(study):
        loop.run_trial({}, toy_data(study), study, lambda metrics, checkpoint_dir: None)
        return seen

    return run


def test_the_default_optimizer_is_adam_at_3e_4_with_beta1_0_9(spy):
    seen = spy(toy_study())
    (opt,) = seen["optimizers"]
    assert type(opt) is torch.optim.Adam  # O1
    (group,) = opt.param_groups
    assert group["lr"] == 3e-4  # O1: Adam's safe default
    assert group["betas"] == (0.9, 0.999)  # MO1: momentum is Adam's beta1


def test_sgd_gets_momentum_0_9_by_default(spy):
    seen = spy(toy_study(train={"optimizer": "sgd", "lr": 0.01}))
    (opt,) = seen["optimizers"]
    assert type(opt) is torch.optim.SGD
    assert [g["momentum"] for g in opt.param_groups] == [0.9]  # MO1
    assert [g["lr"] for g in opt.param_groups] == [0.01]


def test_dropout_is_on_while_training_and_off_while_validating(spy):
    seen = spy(toy_study(model={"dropout": 0.5}))
    calls = seen["dropout"]
    train = [c for c in calls if c[0] == "train"]
    evals = [c for c in calls if c[0] == "eval"]
    assert train and evals and len(train) + len(evals) == len(calls)
    assert all(training for _, training, _ in train)
    assert not all(unchanged for _, _, unchanged in train)  # some units were really dropped
    assert all(not training and unchanged for _, training, unchanged in evals)


def test_no_dropout_layer_without_dropout(spy):
    assert spy(toy_study())["dropout"] == []  # R1: regularisation only when asked for
