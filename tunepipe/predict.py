"""Loading the best model of a run: `tunepipe.load_model(RUN_DIR)` returns it ready to predict.

Shapes (n rows in): classification `predict` → (n,) class ids as declared in the data,
`predict_proba` → (n, C) softmax probabilities in `classes` order; binary `predict` → (n,) 0/1,
`predict_proba` → (n,) probability of 1; regression `predict` → (n,) for one target, (n, k) for
k targets, in the targets' own units, and no `predict_proba` (it is not a classifier).

A run folder names code that `load_model` imports (a custom model factory from the study's
`code_dir`): load only run folders you trust, as you would run only study files you trust.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tunepipe.errors import RunDirError, TunepipeError


@dataclass
class LoadedModel:
    """The trained network plus its input normalisation and task head."""

    model: torch.nn.Module
    meta: dict[str, Any]

    @property
    def task(self) -> str:
        return self.meta["task"]

    @property
    def feature_names(self) -> list[str]:
        """The training data's feature columns, in the order the model reads them."""
        return list(self.meta["data_stats"].get("feature_names") or [])

    def _inputs(self, x: Any) -> torch.Tensor:
        stats = self.meta["data_stats"]
        x = _by_name(x, self.feature_names) if _is_table(x) else np.asarray(x, dtype=np.float32)
        if x.ndim == 1:  # one row given flat: a batch of one, not len(x) rows of one value
            x = x[None, :]
        x = x.reshape(len(x), -1)
        if x.shape[1] != len(stats["feature_mean"]):
            raise ValueError(
                f"each row needs {len(stats['feature_mean'])} feature values; got {x.shape[1]}"
            )
        bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
        if len(bad):
            raise ValueError(
                f"{len(bad)} rows hold NaN or inf (rows {bad[:10].tolist()}"
                f"{' ...' if len(bad) > 10 else ''}); the model was trained on finite values: "
                "drop or fill those rows first"
            )
        x = (x - np.asarray(stats["feature_mean"], np.float32).reshape(1, -1)) / np.asarray(
            stats["feature_std"], np.float32
        ).reshape(1, -1)
        return torch.from_numpy(x.reshape(len(x), *self.meta["input_shape"]))

    @torch.no_grad()
    def predict(self, x: Any) -> np.ndarray:
        """Raw (un-normalised) rows in (an array, or a DataFrame/Arrow table matched by column
        name) → class ids, 0/1, or targets in their own units out (shapes: module docstring)."""
        self.model.eval()
        out = self.model(self._inputs(x))
        if self.task == "classification":
            classes = np.asarray(self.meta["data_stats"]["classes"])
            return classes[out.argmax(dim=-1).numpy()]
        if self.task == "binary":
            return (out > 0).long().reshape(len(out)).numpy()
        stats = self.meta["data_stats"]
        y = out.numpy() * np.asarray(stats["target_std"]) + np.asarray(stats["target_mean"])
        return y.reshape(len(y)) if y.ndim == 2 and y.shape[1] == 1 else y

    @property
    def predict_proba(self) -> Any:
        """Class probabilities (softmax), or the probability of 1 (binary); classifiers only."""
        if self.task not in ("classification", "binary"):
            raise AttributeError(
                f"predict_proba: a {self.task} model has no class probabilities; use predict"
            )
        return self._proba

    @torch.no_grad()
    def _proba(self, x: Any) -> np.ndarray:
        self.model.eval()
        out = self.model(self._inputs(x))
        if self.task == "classification":
            return out.softmax(-1).numpy()
        return out.sigmoid().reshape(len(out)).numpy()


def _is_table(x: Any) -> bool:
    """A pandas (or polars) DataFrame or a pyarrow Table: columns with names."""
    import pyarrow as pa

    return isinstance(x, pa.Table) or (hasattr(x, "columns") and hasattr(x, "to_numpy"))


def _by_name(x: Any, names: list[str]) -> np.ndarray:
    """The table's feature columns in training order; missing or extra columns are refused."""
    import pyarrow as pa

    given = [str(c) for c in (x.column_names if isinstance(x, pa.Table) else x.columns)]
    if not names:
        raise ValueError(
            "this model was saved without its feature names (an older tunepipe); pass an array "
            "whose columns are in the training data's order"
        )
    missing = [n for n in names if n not in given]
    extra = [c for c in given if c not in names]
    problems = [f"missing columns: {', '.join(map(repr, missing))}"] if missing else []
    if extra:
        problems.append(f"columns the model was not trained on: {', '.join(map(repr, extra))}")
    if problems:
        raise ValueError(
            "; ".join(problems) + f". The model reads: {', '.join(names[:20])}"
            f"{' ...' if len(names) > 20 else ''}"
        )
    columns = [_column(x, n) for n in names]
    if len(columns) == 1 and columns[0].dtype == object:  # an image column: one array per row
        return np.stack([np.asarray(v, np.float32).ravel() for v in columns[0]])
    return np.column_stack(columns).astype(np.float32)


def _column(x: Any, name: str) -> np.ndarray:
    import pyarrow as pa

    if isinstance(x, pa.Table):
        return x.column(name).to_numpy(zero_copy_only=False)
    match = [c for c in x.columns if str(c) == name][0]
    return np.asarray(x[match].to_numpy())


def load_model(run_dir: str) -> LoadedModel:
    """The best model a study saved under RUN_DIR/best_model (local path or URI), from any
    working directory: a custom factory is imported from the study's recorded code folder.

    The weights load with `torch.load(weights_only=True)`: a checkpoint cannot run code; the
    factory the run folder names can (see the module docstring).
    """
    from tunepipe.models import build_model
    from tunepipe.storage import locate_run_dir
    from tunepipe.train import checkpoint as ckpt

    loc = locate_run_dir(run_dir)
    if loc.is_local and loc.exists("specialists.json"):  # one model per group, combined
        from tunepipe.specialists import load_specialists

        return load_specialists(loc.path)
    if not loc.exists("best_model"):
        raise RunDirError(
            f"{run_dir}: no best_model/ here; is this a finished run folder "
            "(it holds summary.json)? A study whose every trial failed has none"
        )
    if loc.is_local:
        state, meta = ckpt.load(f"{loc.path}/best_model")
    else:
        import pyarrow.fs as pafs

        with tempfile.TemporaryDirectory() as tmp:
            pafs.copy_files(f"{loc.path}/best_model", tmp, source_filesystem=loc.fs)
            state, meta = ckpt.load(tmp)
    looked = _add_study_code(loc) if meta["model"].get("kind") == "custom" else []
    try:
        model = build_model(meta["model"], tuple(meta["input_shape"]), meta["output_dim"])
    except TunepipeError as exc:
        where = ", ".join(map(str, looked)) or "no folder recorded in run.json"
        raise RunDirError(
            f"{run_dir}: cannot build the model: {exc} (looked in {where}); put the factory's "
            "module on sys.path before load_model"
        ) from None
    model.load_state_dict(state["model"])
    model.eval()
    return LoadedModel(model, meta)


def _add_study_code(loc: Any) -> list[Path]:
    """Put the study's folder and code_dir (run.json, study.yaml) on the import path; returns
    the folders it looked at."""
    import yaml

    recorded = loc.read_json("run.json").get("study_dir") if loc.exists("run.json") else None
    if not recorded:
        return []
    study_dir = Path(recorded)
    code_dir = None
    if loc.exists("study.yaml"):
        code_dir = (yaml.safe_load(loc.read_text("study.yaml")) or {}).get("code_dir")
    paths = [study_dir] + ([(study_dir / code_dir).resolve()] if code_dir else [])
    sys.path[:0] = [str(p) for p in paths if p.is_dir() and str(p) not in sys.path]
    return paths
