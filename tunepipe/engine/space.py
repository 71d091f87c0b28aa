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
    if kind == "choice":
        return tune.choice(value.values)
    if kind == "grid":
        return tune.grid_search(value.values)
    raise ValueError(f"unknown domain type {kind!r}")


def space_size(study: StudyConfig) -> str:
    """A human description of the search space's size (for inspect and validate)."""
    discrete, continuous = 1, 0
    for value in study.search_space.values():
        kind = getattr(value, "type", None)
        if kind in ("choice", "grid"):
            discrete *= len(value.values)
        elif kind == "randint":
            discrete *= value.high - value.low
        elif kind is not None:
            continuous += 1
    if continuous:
        return f"{continuous} continuous × {discrete} discrete combinations"
    return f"{discrete} combinations"


def min_batch_size(study: StudyConfig) -> int:
    """The smallest batch size any trial can use (the data must hold at least one batch)."""
    value = study.search_space.get("batch_size", study.train.batch_size)
    if isinstance(value, BaseModel):
        if hasattr(value, "values"):
            return min(int(v) for v in value.values)
        return int(value.low)
    return int(value)
