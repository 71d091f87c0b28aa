"""`warm_start: RUN_DIR`: an earlier run's trials, as (sampled settings, best metric) pairs the new
study's Optuna searcher starts from. Trials the new space can't hold are left out, and counted."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel

from tunepipe.config import StudyConfig
from tunepipe.errors import RunDirError
from tunepipe.storage import locate_run_dir


def warm_points(study: StudyConfig, run_dir: str) -> tuple[list[tuple[dict, float]], str]:
    """(kept points, one line saying how many were kept and why the rest were left out)."""
    loc = locate_run_dir(run_dir)
    if not loc.exists("results.parquet"):
        raise RunDirError(
            f"warm_start: {loc.display} holds no results.parquet; give the run folder of a "
            "finished (or time-budgeted) study"
        )
    rows = loc.read_parquet("results.parquet").to_pylist()
    if rows and study.metric not in rows[0]:
        raise RunDirError(
            f"warm_start: {loc.display}'s results have no {study.metric!r} column (the metric "
            "this study optimises); warm-start from a study with the same metric"
        )
    kept, outside, missing, unscored = [], 0, 0, 0
    for row in rows:
        value = row.get(study.metric)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            unscored += 1
            continue
        params, why = _params(study, row)
        if params is None:
            outside += why == "outside"
            missing += why == "missing"
            continue
        kept.append((params, float(value)))
    left = outside + missing + unscored
    detail = (
        f" ({outside} outside the new space, {missing} missing a new setting, "
        f"{unscored} without a finite {study.metric})"
        if left
        else ""
    )
    return kept, f"warm start: {len(kept)} trial(s) from {loc.display}, {left} left out{detail}"


def _params(study: StudyConfig, row: dict[str, Any]) -> tuple[dict | None, str]:
    from tunepipe.engine.search import condition_met, ordered_keys

    params: dict[str, Any] = {}
    for key in ordered_keys(study):
        dom = study.search_space[key]
        if not isinstance(dom, BaseModel) or not condition_met(dom, params):
            continue
        value = row.get(f"config.{key}")
        if value is None:
            return None, "missing"
        if not contains(dom, value):
            return None, "outside"
        params[key] = value
    return params, ""


def contains(dom: Any, value: Any) -> bool:
    """Whether a study-file domain can produce `value` (Optuna refuses a warm trial outside)."""
    if dom.type == "choice":
        return value in dom.values
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if dom.type in ("randint", "lograndint"):
        return float(value).is_integer() and dom.low <= value < dom.high
    if dom.type == "qrandint":
        return float(value).is_integer() and dom.low <= value <= dom.high
    if not dom.low <= value <= dom.high:
        return False
    if dom.type == "quniform":
        steps = (value - dom.low) / dom.q
        return abs(steps - round(steps)) < 1e-9
    return True
