"""Facts about a study's search space that need neither Ray nor torch (validate, inspect, sanity).

The translation into Ray Tune's sampling objects is `tunepipe.engine.space`.
"""

from __future__ import annotations

from pydantic import BaseModel

from tunepipe.config import StudyConfig


def space_size(study: StudyConfig) -> str:
    """A human description of the search space's size (for inspect and validate)."""
    discrete, continuous = 1, 0
    for value in study.search_space.values():
        kind = getattr(value, "type", None)
        if kind in ("choice", "grid"):
            discrete *= len(value.values)
        elif kind in ("randint", "lograndint"):
            discrete *= value.high - value.low
        elif kind == "qrandint":
            discrete *= (value.high - value.low) // value.q + 1
        elif kind is not None:
            continuous += 1
    if continuous:
        return f"{continuous} continuous × {discrete} discrete combinations"
    return f"{discrete} combinations"


def trial_count(study: StudyConfig) -> int:
    """The trials Ray Tune will run: every grid point num_samples times."""
    grid = 1
    for value in study.search_space.values():
        if getattr(value, "type", None) == "grid":
            grid *= len(value.values)
    return study.num_samples * grid


def min_batch_size(study: StudyConfig) -> int:
    """The smallest batch size any trial can use (the data must hold at least one batch)."""
    value = study.search_space.get("batch_size", study.train.batch_size)
    if isinstance(value, BaseModel):
        if hasattr(value, "values"):
            return min(int(v) for v in value.values)
        return int(value.low)
    return int(value)
