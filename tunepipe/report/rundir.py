"""Read a run folder (docs/run-dir.md) into plain Python and numpy, tolerating missing parts.

The report must render whatever a study left behind: a run cut short, a sanity stage that never ran,
a user trainable that reports its own metric names. So every reader here returns an empty value
instead of raising when an optional file or field is absent, and the HTML says what is missing.
Only pyarrow and numpy are used: pandas is not a runtime dependency of tunepipe.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

Columns = dict[str, list[Any]]
"""A table as column name → list of values (pyarrow's `to_pydict`)."""


@dataclass
class SanityData:
    """The sanity stage's output, normalised; checks as dicts, LR range test arrays."""

    checks: list[dict[str, Any]] = field(default_factory=list)
    lrs: np.ndarray = field(default_factory=lambda: np.array([]))
    losses: np.ndarray = field(default_factory=lambda: np.array([]))
    smoothed: np.ndarray = field(default_factory=lambda: np.array([]))
    suggested_lr: float | None = None
    suggested_range: tuple[float, float] | None = None
    error: str | None = None  # why sanity.json could not be read, when it exists but is broken


@dataclass
class RunData:
    """Everything the report draws from, read once."""

    run_dir: Path
    results: Columns
    history: Columns
    summary: dict[str, Any]
    sanity: SanityData | None
    metric: str
    mode: str  # "min" or "max"
    versions: dict[str, str] = field(default_factory=dict)  # run.json's: tunepipe, ray, torch

    @property
    def trial_ids(self) -> list[str]:
        """Trial ids in results.parquet order."""
        return [str(t) for t in self.results.get("trial_id", [])]


def read_table(path: Path) -> Columns:
    """Read a Parquet file into columns; an absent file is an empty table."""
    if not path.exists():
        return {}
    return pq.read_table(path).to_pydict()


def floats(values: list[Any] | None) -> np.ndarray:
    """Values as float64; None, strings and other non-numbers become NaN (never raise)."""
    out = np.full(len(values or []), np.nan)
    for i, v in enumerate(values or []):
        if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
            out[i] = float(v)
    return out


def finite_or_none(value: Any) -> float | None:
    """A finite float, or None for anything else (NaN, inf, strings, None)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _read_json(path: Path) -> Any:
    # Python's json accepts NaN/Infinity, which a diverged study's summary may well contain.
    return json.loads(path.read_text())


def read_sanity(path: Path) -> SanityData | None:
    """Read sanity.json: a dict with `checks` and `lr_range`, or a bare list of checks.

    Returns None when the file is absent (the sanity stage did not run).
    """
    if not path.exists():
        return None
    try:
        raw = _read_json(path)
    except (OSError, ValueError) as exc:
        return SanityData(error=f"{path.name} could not be read: {exc}")
    if isinstance(raw, list):
        raw = {"checks": raw}
    if not isinstance(raw, dict):
        return SanityData(error=f"{path.name} holds a {type(raw).__name__}, expected an object")
    checks = [c for c in raw.get("checks") or [] if isinstance(c, dict)]
    data = SanityData(checks=checks)
    lr_range = raw.get("lr_range")
    if isinstance(lr_range, dict):
        _fill_lr_range(data, lr_range)
    return data


def _fill_lr_range(data: SanityData, lr_range: dict[str, Any]) -> None:
    lrs, losses = floats(lr_range.get("lrs")), floats(lr_range.get("losses"))
    smoothed = floats(lr_range.get("smoothed"))
    n = min(len(lrs), len(losses)) if len(losses) else len(lrs)
    # Lengths that disagree are truncated to the common prefix rather than rejected.
    data.lrs, data.losses = lrs[:n], losses[:n]
    data.smoothed = smoothed[:n] if len(smoothed) >= n else np.array([])
    data.suggested_lr = finite_or_none(lr_range.get("suggested_lr"))
    rng = lr_range.get("suggested_range")
    if isinstance(rng, (list, tuple)) and len(rng) == 2:
        lo, hi = finite_or_none(rng[0]), finite_or_none(rng[1])
        if lo is not None and hi is not None:
            data.suggested_range = (min(lo, hi), max(lo, hi))


def load_run(run_dir: str | Path) -> RunData:
    """Read results, history, summary and sanity output of a run folder.

    Raises FileNotFoundError naming the folder when neither results.parquet nor summary.json
    exists: then there is nothing to report and the caller should say so.
    """
    run_dir = Path(run_dir)
    summary_path = run_dir / "summary.json"
    results = read_table(run_dir / "results.parquet")
    if not results and not summary_path.exists():
        raise FileNotFoundError(
            f"{run_dir} holds neither results.parquet nor summary.json; "
            "is it a tunepipe run folder (docs/run-dir.md)?"
        )
    summary = _read_json(summary_path) if summary_path.exists() else {}
    if not isinstance(summary, dict):
        summary = {}
    metric = str(summary.get("metric") or "val_loss")
    mode = "max" if str(summary.get("mode", "min")).lower() == "max" else "min"
    return RunData(
        run_dir=run_dir,
        results=results,
        history=read_table(run_dir / "history.parquet"),
        summary=summary,
        sanity=read_sanity(run_dir / "sanity.json"),
        metric=metric,
        mode=mode,
        versions=_versions(run_dir / "run.json"),
    )


def _versions(path: Path) -> dict[str, str]:
    """The package versions the run recorded (run.json); empty for runs that recorded none."""
    try:
        record = _read_json(path) if path.exists() else {}
    except (OSError, ValueError):  # a damaged run.json costs the header its versions, no more
        return {}
    found = record.get("versions") if isinstance(record, dict) else None
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def ranked_trials(run: RunData) -> list[str]:
    """Trial ids best first by the study metric; trials without a finite value go last."""
    ids = run.trial_ids
    values = floats(run.results.get(run.metric))
    if len(values) != len(ids):
        return ids
    key = values if run.mode == "min" else -values
    key = np.where(np.isfinite(key), key, np.inf)
    return [ids[i] for i in np.argsort(key, kind="stable")]


def best_trial(run: RunData) -> str | None:
    """The summary's best trial, else the best-ranked one; None when no trial has a finite metric.

    A run where every trial diverged has no best trial, and the report must not crown one.
    """
    best = run.summary.get("best_trial_id")
    if best is not None and str(best) in run.trial_ids:
        return str(best)
    ranked = ranked_trials(run)
    if not ranked:
        return None
    value = floats([trial_row(run, ranked[0]).get(run.metric)])[0]
    return ranked[0] if np.isfinite(value) else None


def trial_history(run: RunData, trial_id: str) -> Columns:
    """The history rows of one trial, sorted by epoch."""
    ids = run.history.get("trial_id", [])
    rows = [i for i, t in enumerate(ids) if str(t) == trial_id]
    epochs = floats([run.history.get("epoch", [None] * len(ids))[i] for i in rows])
    rows = [rows[i] for i in np.argsort(epochs, kind="stable")]
    return {name: [col[i] for i in rows] for name, col in run.history.items()}


def trial_row(run: RunData, trial_id: str) -> dict[str, Any]:
    """One results row as a dict (empty when the trial is unknown)."""
    try:
        i = run.trial_ids.index(trial_id)
    except ValueError:
        return {}
    return {name: col[i] for name, col in run.results.items()}
