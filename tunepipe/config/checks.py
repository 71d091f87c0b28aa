"""Rules that span several fields, run after the per-field checks (house style 4)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel

from tunepipe.config.common import BUILTIN_METRICS, TRAIN_KEYS, did_you_mean
from tunepipe.config.domains import INT_DOMAINS
from tunepipe.config.model import CustomModel
from tunepipe.config.search_checks import search_problems
from tunepipe.config.study import StudyConfig
from tunepipe.config.training import TrainConfig


def cross_field_problems(s: StudyConfig) -> list[tuple[str, str, Any]]:
    """Rules that span fields, as (field path, what is wrong, value given)."""
    if s.trainable:
        both = "data" if s.data is not None else "model" if s.model is not None else None
        if both:
            return [(both, "give either trainable or data+model, not both", s.trainable)]
        return _selection_problems(s) + _auto_lr_problems(s) + search_problems(s)
    problems = _selection_problems(s)
    for part in ("data", "model"):
        if getattr(s, part) is None:
            problems.append((part, f"{part} is required unless the study names a trainable", None))
    if s.metric not in BUILTIN_METRICS and s.metric != "train_loss":  # P8: said above
        problems.append(
            (
                "metric",
                f"not reported by the built-in trainable; use one of {', '.join(BUILTIN_METRICS)}",
                s.metric,
            )
        )
    elif s.metric == "val_acc" and s.task == "regression":
        problems.append(
            ("metric", "val_acc is not reported for regression; use val_loss or val_rmse", s.metric)
        )
    elif (s.metric == "val_acc") != (s.mode == "max"):
        problems.append(
            (
                "mode",
                f"{s.metric} should be {'maximised' if s.metric == 'val_acc' else 'minimised'}"
                f"; set mode: {'max' if s.metric == 'val_acc' else 'min'}",
                s.mode,
            )
        )
    if s.model is not None and not isinstance(s.model, CustomModel):
        allowed = set(TRAIN_KEYS) | set(type(s.model).model_fields) - {"kind"}
        for key, value in s.search_space.items():
            if key not in allowed:
                problems.append(
                    (
                        f"search_space.{key}",
                        f"neither a training setting nor a "
                        f"{s.model.kind} model setting{did_you_mean(key, allowed)}",
                        value,
                    )
                )
    batch = s.search_space.get("batch_size", s.train.batch_size)
    kind = getattr(batch, "type", None)
    bounds = [batch.low] if kind in INT_DOMAINS else [] if kind else [batch]
    for b in getattr(batch, "values", bounds):
        if not (isinstance(b, int) and not isinstance(b, bool) and b >= 1):
            problems.append(("search_space.batch_size", "batch sizes are positive integers", b))
    problems += _space_value_problems(s)
    return problems + _auto_lr_problems(s) + search_problems(s)


def _selection_problems(s: StudyConfig) -> list[tuple[str, str, Any]]:
    """P8: trials are selected on validation, never on the training loss."""
    train = s.metrics.train_loss if s.trainable else "train_loss"
    if s.metric != train:
        return []
    return [("metric", "select on a validation metric (P8), e.g. val_loss", s.metric)]


FLOAT_DOMAINS = ("uniform", "loguniform", "quniform")
AUTO_LR = "auto"  # search_space.lr: auto → the sanity stage's LR range test picks the range


def _auto_lr_problems(s: StudyConfig) -> list[tuple[str, str, Any]]:
    """`lr: auto` needs the LR range test: the built-in trainable and the sanity stage."""
    if s.search_space.get("lr") != AUTO_LR:
        return []
    if s.trainable:
        return [("search_space.lr", "auto needs the built-in trainable (data + model)", AUTO_LR)]
    if not s.playbook.sanity:
        return [("search_space.lr", "auto needs the sanity stage (playbook.sanity: true)", AUTO_LR)]
    return []


def _space_value_problems(s: StudyConfig) -> list[tuple[str, str, Any]]:
    """Each value a search-space entry can take must pass its setting's own rules (dropout < 1,
    hidden_width ≥ 1, optimizer adam|sgd, ...), so a bad range fails here, not inside a trial."""
    from pydantic import TypeAdapter, ValidationError

    owners = [TrainConfig] + ([type(s.model)] if s.model and s.model.kind != "custom" else [])
    problems = []
    for key, dom in s.search_space.items():
        field = next((o.model_fields[key] for o in owners if key in o.model_fields), None)
        if field is None or dom == "auto":
            continue
        if field.annotation is int and getattr(dom, "type", None) in FLOAT_DOMAINS:
            problems.append(
                (
                    f"search_space.{key}",
                    f"{key} is an integer setting, but a {dom.type} range gives fractions "
                    "(a width of 37.6 crashes every trial); use randint, qrandint or lograndint",
                    dom,
                )
            )
            continue
        if key == "batch_size":
            continue
        adapter = TypeAdapter(Annotated[field.annotation, field])
        for value in _domain_values(dom):
            try:
                adapter.validate_python(value, strict=True)
            except ValidationError as exc:
                msg = exc.errors(include_url=False)[0]["msg"].replace("Input should be", "must be")
                problems.append((f"search_space.{key}", f"{key} {msg}", value))
                break
    return problems


def _domain_values(dom: Any) -> list[Any]:
    """The values a domain can produce that decide its validity: bounds, or every choice."""
    if not isinstance(dom, BaseModel):
        return [dom]
    if hasattr(dom, "values"):
        return list(dom.values)
    high = dom.high - 1 if dom.type in ("randint", "lograndint") else dom.high
    return [dom.low, high]
