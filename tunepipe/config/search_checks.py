"""Cross-field rules of `search:`, `warm_start:`, `target:` and conditional domains (`when:`):
what Ray or Optuna would refuse, or silently mis-handle, refused at validate time instead."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from tunepipe.config.common import BUILTIN_METRICS
from tunepipe.config.study import StudyConfig

Problem = tuple[str, str, Any]
MODEL_BASED = ("tpe", "cmaes")


def search_problems(s: StudyConfig) -> list[Problem]:
    return [*_searcher(s), *_conditions(s), *_target(s), *_warm_start(s)]


def _searcher(s: StudyConfig) -> list[Problem]:
    kind, problems = s.search.kind, []
    if kind in MODEL_BASED and s.scheduler.kind == "pbt":
        problems.append(
            (
                "search.kind",
                f"PBT explores by itself and Ray refuses a searcher beside it; use search.kind "
                f"random with scheduler pbt, or {kind} with asha or fifo",
                kind,
            )
        )
    if kind in MODEL_BASED and not any(isinstance(d, BaseModel) for d in s.search_space.values()):
        problems.append(("search.kind", f"{kind} needs ranges or choices in search_space", kind))
    for key, dom in s.search_space.items():
        t = getattr(dom, "type", None)
        if t is None or dom == "auto":
            continue
        if kind in MODEL_BASED and t == "grid":
            problems.append(
                (
                    f"search_space.{key}",
                    f"a grid is Ray's exhaustive search; search.kind {kind} samples with Optuna, "
                    "which takes ranges and choices: write {type: choice, values: [...]}",
                    t,
                )
            )
        elif kind == "cmaes" and t == "choice":
            problems.append(
                (
                    f"search_space.{key}",
                    "cmaes samples continuous and integer ranges; a choice needs search.kind tpe",
                    t,
                )
            )
        elif kind == "grid" and t not in ("choice", "grid"):
            problems.append(
                (
                    f"search_space.{key}",
                    "search.kind grid enumerates every combination of choices; give "
                    "{type: choice, values: [...]}, or use search.kind random or tpe",
                    t,
                )
            )
    return problems


def _conditions(s: StudyConfig) -> list[Problem]:
    problems = []
    for key, dom in s.search_space.items():
        when = getattr(dom, "when", None)
        if not when:
            continue
        path = f"search_space.{key}.when"
        if dom.type == "grid" or s.scheduler.kind == "pbt":
            why = "a grid is always expanded" if dom.type == "grid" else "PBT mutates every key"
            problems.append((path, f"conditions need sampled domains ({why})", when))
            continue
        for parent, value in when.items():
            other = s.search_space.get(parent)
            values = getattr(other, "values", None)
            if values is None or getattr(other, "type", None) not in ("choice", "grid"):
                problems.append(
                    (f"{path}.{parent}", f"{parent} must be searched as a choice", value)
                )
            elif getattr(other, "when", None):
                problems.append(
                    (f"{path}.{parent}", f"{parent} is conditional itself (one level only)", value)
                )
            elif value not in values:
                problems.append(
                    (f"{path}.{parent}", f"not one of {parent}'s values {values}", value)
                )
    return problems


def _target(s: StudyConfig) -> list[Problem]:
    if not s.target:
        return []
    problems = []
    for name, value in s.target.items():
        path = f"target.{name}"
        if s.trainable is None and name not in BUILTIN_METRICS or name == "train_loss":
            allowed = [m for m in BUILTIN_METRICS if m != "train_loss"]
            problems.append((path, f"a target is a validation metric: one of {allowed}", name))
        elif name == "val_acc" and s.task == "regression":
            problems.append((path, "val_acc is not reported for regression", name))
        elif name == "val_acc" and not 0 < value <= 1:
            problems.append((path, "an accuracy target is between 0 and 1", value))
    return problems


def _warm_start(s: StudyConfig) -> list[Problem]:
    if s.warm_start and s.search.kind not in MODEL_BASED:
        return [
            (
                "warm_start",
                "needs a model-based searcher (search.kind: tpe or cmaes); random and grid "
                "search would not use the earlier results",
                s.warm_start,
            )
        ]
    return []


def target_is_met(name: str, value: float, target: float) -> bool:
    """Accuracy targets are reached from below, losses and errors from above."""
    return value >= target if name.endswith("acc") else value <= target
