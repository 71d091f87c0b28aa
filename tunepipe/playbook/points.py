"""Points of a study's search space the sanity stage trains at, without Ray or torch.

`typical_config`: one sane value per hyperparameter (the middle of a range in its own scale, the
study's own setting when a choice offers it). `largest_config`: P1's "largest model in the space,
no regularisation" for the overfit check.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel

from tunepipe.config import AUTO_LR, TRAIN_KEYS, CustomModel, StudyConfig
from tunepipe.config.domains import INT_DOMAINS

SIZE_KEYS = ("hidden_width", "depth", "channels", "fc_width")  # built-in models' capacity
REGULARISERS = ("dropout", "weight_decay")  # P1/R1: off while checking the net can overfit


def study_default(study: StudyConfig, name: str) -> Any:
    """The value a hyperparameter has outside the search space (train:, model: or model.args)."""
    if name in TRAIN_KEYS:
        return getattr(study.train, name)
    if isinstance(study.model, CustomModel):
        return study.model.args.get(name)
    return getattr(study.model, name, None)


def typical_value(domain: Any, default: Any = None) -> Any:
    """A sane point of a domain: log-midpoint, midpoint, or the default when a choice holds it."""
    if not isinstance(domain, BaseModel):
        return domain
    kind = domain.type
    if kind == "loguniform":
        return math.sqrt(domain.low * domain.high)
    if kind in ("uniform", "quniform"):
        mid = (domain.low + domain.high) / 2
        return round(mid / domain.q) * domain.q if kind == "quniform" else mid
    if kind == "randint":
        return (domain.low + domain.high - 1) // 2  # high is exclusive, as in Ray Tune
    if kind == "lograndint":
        return round(math.sqrt(domain.low * (domain.high - 1)))
    if kind == "qrandint":  # high is inclusive here
        return round((domain.low + domain.high) / 2 / domain.q) * domain.q
    if default in domain.values:
        return default
    return domain.values[len(domain.values) // 2]


def largest_value(domain: Any) -> Any:
    """The value of a domain that makes a model biggest (lists, e.g. CNN channels, by size)."""
    if not isinstance(domain, BaseModel):
        return domain
    if domain.type in ("randint", "lograndint"):
        return domain.high - 1
    if domain.type == "qrandint":
        return domain.high // domain.q * domain.q
    if hasattr(domain, "values"):
        return max(domain.values, key=_size)
    return domain.high


def _size(v: Any) -> tuple[float, float]:
    """Numbers by value; a list of widths (CNN channels) by the weights a chain of layers of those
    widths holds, Σ w_i·w_(i+1), then by depth."""
    if isinstance(v, (list, tuple)):
        w = [x for x in v if isinstance(x, (int, float))]
        return (w[0] + sum(a * b for a, b in zip(w, w[1:], strict=False)) if w else 0, len(v))
    return (v, 0) if isinstance(v, (int, float)) and not isinstance(v, bool) else (-math.inf, 0)


def typical_config(study: StudyConfig) -> dict[str, Any]:
    """One trial config at sane points of the space (`lr: auto` left out: it is not known yet)."""
    return {
        name: typical_value(domain, study_default(study, name))
        for name, domain in study.search_space.items()
        if domain != AUTO_LR
    }


def largest_config(study: StudyConfig) -> dict[str, Any]:
    """P1: the largest model the space allows, regularisation off, other settings typical.

    Built-in models grow with SIZE_KEYS; for a custom factory every integer-valued domain is
    taken at its largest (widths and depths are integers; rates are not).
    """
    config = typical_config(study)
    custom = isinstance(study.model, CustomModel)
    for name, domain in study.search_space.items():
        if name in TRAIN_KEYS:
            continue
        if name in SIZE_KEYS or (custom and _integer_domain(domain)):
            config[name] = largest_value(domain)
    for name in REGULARISERS:
        if name in TRAIN_KEYS or not custom or name in config or name in study.model.args:
            config[name] = 0.0
    return config


def _integer_domain(domain: Any) -> bool:
    if not isinstance(domain, BaseModel):
        return False
    if domain.type in INT_DOMAINS:
        return True
    values = getattr(domain, "values", None)
    return bool(values) and all(isinstance(v, int) and not isinstance(v, bool) for v in values)


def lr_of(study: StudyConfig, suggested: float | None = None) -> float:
    """The rate the sanity stage trains with: the study's constant, a range's sane point, or, for
    `lr: auto`, the LR range test's suggestion (the study's train.lr until there is one)."""
    domain = study.search_space.get("lr", study.train.lr)
    if domain == AUTO_LR:
        return float(suggested) if suggested else study.train.lr
    return float(typical_value(domain, study.train.lr))
