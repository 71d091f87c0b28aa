"""Specialists (the case study's last step): one model per group of labels, each trained on
every row that has its whole group, stopped early by patience, optionally started from an
earlier run (init_from: net6/net7). `load_model` on the run folder combines them.

The run folder holds one ordinary run folder per group and specialists.json: the label order,
each group's labels and best validation RMSE, and the combined RMSE over every validation value.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tunepipe.errors import StudyFileError

SPECIALISTS_FILE = "specialists.json"


def group_labels(labels: list[str], given: list[str], x_suffix: str = "_x") -> list[str]:
    """A group's label columns, in the study's order; keypoint names stand for <name>_x, _y."""
    y_suffix = x_suffix[:-1] + "y"
    cols = []
    for name in given:
        found = [name] if name in labels else [f"{name}{x_suffix}", f"{name}{y_suffix}"]
        unknown = [c for c in found if c not in labels]
        if unknown:
            raise StudyFileError(
                f"specialists.groups: {name!r} is neither a label column nor a keypoint with "
                f"label columns ({unknown[0]!r} is not in data.label)"
            )
        cols += found
    return [c for c in labels if c in cols]


def group_study(study: Any, name: str, storage: str) -> Any:
    """The ordinary study one specialist runs: its labels, rows, flips, patience and start."""
    spec, group = study.specialists, study.specialists.groups[name]
    labels = group_labels(study.data.labels, group.labels)
    data = study.data.model_copy(update={"label": labels, "missing_labels": "drop"})
    if data.augment and data.augment.hflip:  # only the pairs inside the group still swap
        hflip = data.augment.hflip
        kept = [p for p in hflip.swap if _in_group(p, labels, hflip.x_suffix)]
        data.augment = data.augment.model_copy(
            update={"hflip": hflip.model_copy(update={"swap": kept})}
        )
    overfitting = (
        study.stopping.overfitting
        or type(study.stopping).model_fields["overfitting"].default_factory()
    )
    overfitting = overfitting.model_copy(update={"patience": group.patience or spec.patience})
    stopping = study.stopping.model_copy(update={"overfitting": overfitting})
    scheduler = study.scheduler.model_copy(
        update={"max_epochs": group.max_epochs or study.scheduler.max_epochs}
    )
    train = study.train.model_copy(update={"lr": group.lr or study.train.lr})
    return study.model_copy(
        update={
            "name": name,
            "storage": storage,
            "data": data,
            "stopping": stopping,
            "scheduler": scheduler,
            "train": train,
            "init_from": group.init_from or spec.init_from or study.init_from,
            "specialists": None,
        }
    )


def _in_group(pair: tuple[str, str], labels: list[str], x_suffix: str) -> bool:
    cols = set(labels)
    return all(n in cols or f"{n}{x_suffix}" in cols for n in pair)


def run_specialists(study: Any, study_dir: Path, **run_kwargs: Any) -> Any:
    """Train each group in turn (one run folder each), then write specialists.json."""
    from tunepipe.data import load_data
    from tunepipe.engine.runner import RunOutcome, run_study
    from tunepipe.storage import locate

    loc = locate(study.storage, study.name)
    t0, groups, reasons = time.monotonic(), {}, Counter()
    for name in study.specialists.groups:
        sub = group_study(study, name, loc.display)
        finished = Path(loc.display, name, "summary.json")
        if loc.is_local and finished.is_file():  # a rerun keeps the groups already trained
            outcome = RunOutcome(str(finished.parent), json.loads(finished.read_text()))
        else:
            outcome = run_study(sub, study_dir=study_dir, **run_kwargs)
        data = load_data(sub.data, sub.task, sub.seed, base_dir=study_dir)
        rmse = _best_rmse(outcome.run_dir)
        groups[name] = {
            "labels": sub.data.labels,
            "run_dir": outcome.run_dir,
            "val_rmse": rmse,
            "val_values": int(np.isfinite(data.val.y).sum()),
            "best_epoch": outcome.summary.get("best_epoch"),
        }
        reasons.update(outcome.summary["stop_reasons"])
    combined = combined_rmse(groups)
    record = {"labels": study.data.labels, "groups": groups, "combined_val_rmse": combined}
    loc.write_json(SPECIALISTS_FILE, record)
    summary = {
        "study": study.name,
        "best_trial_id": "specialists",
        "best_config": {},
        "metric": "val_rmse",
        "best_val_rmse": combined,
        "n_trials": len(groups),
        "stop_reasons": dict(reasons),
        "wall_seconds": time.monotonic() - t0,
    }
    loc.write_json("summary.json", summary)
    return RunOutcome(loc.display, summary)


def combined_rmse(groups: dict[str, dict[str, Any]]) -> float:
    """RMSE over every validation value of every group (each group's own validation rows)."""
    sq = sum(g["val_rmse"] ** 2 * g["val_values"] for g in groups.values())
    return math.sqrt(sq / max(sum(g["val_values"] for g in groups.values()), 1))


def _best_rmse(run_dir: str) -> float:
    import pyarrow.parquet as pq

    summary = json.loads(Path(run_dir, "summary.json").read_text())
    hist = pq.read_table(Path(run_dir, "history.parquet")).to_pandas()
    best = hist[hist["trial_id"] == summary["best_trial_id"]]
    return float(best.loc[best["val_loss"].idxmin(), "val_rmse"])


@dataclass
class CombinedModel:
    """The specialists as one model: predict gives every label, each from its group's model."""

    labels: list[str]
    parts: list[tuple[list[int], Any]]  # (column indices, LoadedModel)
    meta: dict[str, Any]

    @property
    def task(self) -> str:
        return "regression"

    def predict(self, x: Any) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        out = np.full((len(x) if x.ndim > 1 else 1, len(self.labels)), np.nan)
        for cols, model in self.parts:
            out[:, cols] = model.predict(x)
        return out


def load_specialists(run_dir: str) -> CombinedModel:
    from tunepipe.predict import load_model

    record = json.loads(Path(run_dir, SPECIALISTS_FILE).read_text())
    labels = record["labels"]
    parts = []
    for name, group in record["groups"].items():
        model = load_model(str(Path(run_dir, name)))
        parts.append(([labels.index(c) for c in group["labels"]], model))
    return CombinedModel(labels, parts, record)
