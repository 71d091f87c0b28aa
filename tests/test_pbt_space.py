"""PBT explores what it can change under cloned weights and optimizer state: training settings
(not the optimizer itself) and dropout."""

from __future__ import annotations

from tests.conftest import study_dict
from tunepipe.study import parse_study


def test_pbt_never_explores_a_setting_that_shapes_the_weights():
    from tunepipe.engine.schedule import pbt_space

    study = parse_study(
        study_dict(
            scheduler={"kind": "pbt", "max_epochs": 16, "perturbation_interval": 4},
            search_space={
                "lr": {"type": "loguniform", "low": 1e-4, "high": 1e-1},
                "batch_size": {"type": "choice", "values": [16, 32]},
                "dropout": {"type": "uniform", "low": 0.0, "high": 0.3},
                "hidden_width": {"type": "choice", "values": [64, 128, 256]},
                "depth": {"type": "randint", "low": 1, "high": 4},
                "optimizer": {"type": "choice", "values": ["adam", "sgd"]},
                "weight_decay": 0.0,
            },
        )
    )
    space = pbt_space(study)
    assert sorted(space) == ["batch_size", "dropout", "lr"]
    assert space["lr"] == {"type": "loguniform", "low": 1e-4, "high": 1e-1}
