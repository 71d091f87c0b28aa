"""Search-space domains from the study file → Ray Tune's sampling objects."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from tunepipe.config import StudyConfig


def to_tune_space(study: StudyConfig) -> dict[str, Any]:
    """Ray Tune's param_space: domains become tune.* objects; constants stay as they are.

    With an Optuna searcher (search.kind tpe/cmaes) the searcher samples the domains itself
    (tunepipe.engine.search.define_by_run) and only constants are left here. `search.kind: grid`
    makes every choice a grid. A conditional domain (`when:`) is sampled only when its
    condition holds, else it is None (the built-in trainable then keeps the setting's default).

    The built-in trainable always gets `lr` in its config, so a plateau decay (which scales the
    config's lr) works when the rate is a constant of the study too.
    """
    from tunepipe.engine.search import ordered_keys

    space: dict[str, Any] = {}
    for salt, name in enumerate(ordered_keys(study)):
        value = study.search_space[name]
        if study.search.kind in ("tpe", "cmaes") and isinstance(value, BaseModel):
            continue
        if study.search.kind == "grid" and getattr(value, "type", None) == "choice":
            value = value.model_copy(update={"type": "grid"})
        if getattr(value, "when", None):
            space[name] = _conditional(value, study.seed, salt)
        else:
            space[name] = to_tune_domain(value)
    if not study.trainable and "lr" not in study.search_space:
        space["lr"] = study.train.lr
    return space


def _conditional(value: Any, seed: int, salt: int) -> Any:
    """A tune.sample_from drawing `value`'s domain only when its `when` holds (seeded per key)."""
    import numpy as np
    from ray import tune

    domain = to_tune_domain(value)
    rng = np.random.default_rng([seed, salt])

    def sample(spec: Any) -> Any:
        # Attribute access makes Ray resolve the parent first (its _UnresolvedAccessGuard).
        if not all(getattr(spec.config, k) == v for k, v in value.when.items()):
            return None
        return domain.sample(random_state=rng)

    return tune.sample_from(sample)


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
