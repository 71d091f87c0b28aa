"""Search-space domains from the study file → Ray Tune's sampling objects."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from tunepipe.config import StudyConfig


def to_tune_space(study: StudyConfig) -> dict[str, Any]:
    """Ray Tune's param_space: domains become tune.* objects; constants stay as they are.

    The built-in trainable always gets `lr` in its config, so a plateau decay (which scales the
    config's lr) works when the rate is a constant of the study too.
    """
    space = {name: to_tune_domain(value) for name, value in study.search_space.items()}
    if not study.trainable:
        space.setdefault("lr", study.train.lr)
    return space


def to_tune_domain(value: Any) -> Any:
    from ray import tune

    if not isinstance(value, BaseModel):
        return value
    kind = value.type
    if kind == "uniform":
        return tune.uniform(value.low, value.high)
    if kind == "loguniform":
        return tune.loguniform(value.low, value.high)
    if kind == "quniform":
        return tune.quniform(value.low, value.high, value.q)
    if kind == "randint":
        return tune.randint(value.low, value.high)
    if kind == "qrandint":
        return tune.qrandint(value.low, value.high, value.q)
    if kind == "lograndint":
        return tune.lograndint(value.low, value.high)
    if kind == "choice":
        return tune.choice(value.values)
    if kind == "grid":
        return tune.grid_search(value.values)
    raise ValueError(f"unknown domain type {kind!r}")
