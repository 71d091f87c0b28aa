"""From an Arrow table to normalised train/validation/test arrays (playbook D1, P2, P8).

Everything here runs once per study on the driver; the result is put in Ray's object store once
and shared by every trial.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tunepipe.config import DataConfig
from tunepipe.data.augment import FlipPlan, flip_plan
from tunepipe.data.scaling import label_coverage, missing_label_rows, scale_stats
from tunepipe.errors import DataError


@dataclass
class Split:
    x: np.ndarray  # float32, (n, *input_shape)
    y: np.ndarray  # int64 (n,) for classification; float32 (n, k) for regression/binary

    def __len__(self) -> int:
        return len(self.x)


@dataclass
class PreparedData:
    """Normalised splits plus everything needed to undo or repeat the normalisation."""

    train: Split
    val: Split
    test: Split | None
    task: str
    input_shape: tuple[int, ...]
    output_dim: int
    feature_mean: np.ndarray
    feature_std: np.ndarray
    target_mean: np.ndarray | None = None  # regression targets, standardised (P2)
    target_std: np.ndarray | None = None
    classes: list[int] = field(default_factory=list)
    feature_names: list[str] = field(default_factory=list)  # in the model's input order

    def chance_loss(self) -> float:
        """The loss of a sane untrained model, the one reference every check and rule uses:
        ln C (uniform softmax), ln 2 (logit 0), or the training targets' variance for regression
        (predicting their mean), in the units the model sees (P2)."""
        if self.task == "classification":
            return math.log(max(self.output_dim, 2))
        if self.task == "binary":
            return math.log(2)
        y = self.train.y.reshape(len(self.train), -1).astype(np.float64)
        return float(np.nanvar(y, axis=0).mean())  # NaN: a masked missing label

    flip: FlipPlan | None = None  # batch-time horizontal flip of training batches (net3)
    label_coverage: dict | None = None  # rows with every / each label, before any were dropped

    def stats(self) -> dict:
        """JSON-ready normalisation statistics (written to data_stats.json, kept with the model)."""
        out = {
            "task": self.task,
            "input_shape": list(self.input_shape),
            "output_dim": self.output_dim,
            "classes": self.classes,
            "feature_mean": self.feature_mean.tolist(),
            "feature_std": self.feature_std.tolist(),
            "feature_names": list(self.feature_names),
        }
        if self.target_mean is not None:
            out["target_mean"] = self.target_mean.tolist()
            out["target_std"] = self.target_std.tolist()
        return out


def load_data(
    cfg: DataConfig, task: str, seed: int, min_rows: int = 1, base_dir: Path | None = None
) -> PreparedData:
    """Read, check, split and normalise the study's data; every problem raises DataError."""
    from tunepipe.data.io import read_table

    table = read_table(cfg, base_dir)
    x, feature_names = _features(table, cfg)
    y = _labels(table, cfg, task)
    _check_finite(x, feature_names, y, cfg.labels, allow_nan_labels=cfg.missing_labels != "refuse")
    coverage = label_coverage(y, cfg.labels) if task == "regression" else None
    x, y = missing_label_rows(x, y, cfg)
    if len(x) < max(min_rows, 2):
        raise DataError(
            f"data: {len(x)} rows, fewer than one batch ({min_rows}); lower "
            "batch_size or give more data"
        )
    data = prepare_arrays(x, y, cfg, task, seed, min_rows=min_rows)
    data.feature_names = feature_names  # saved with the model: predict matches columns by name
    data.label_coverage = coverage
    return data


def prepare_arrays(
    x: np.ndarray, y: np.ndarray, cfg: DataConfig, task: str, seed: int, min_rows: int = 1
) -> PreparedData:
    """Split (seeded, stratified for classification), then normalise with train-only statistics."""
    classes: list[int] = []
    if task == "classification":
        classes = _check_classes(y, cfg)
        y = np.searchsorted(np.asarray(classes), y.astype(np.int64)).astype(np.int64)
    elif task == "binary":
        bad = int(np.isin(y, (0, 1), invert=True).sum())
        if bad:
            raise DataError(
                f"data: label column {cfg.labels[0]!r} has {bad} rows that are not 0 "
                "or 1; a binary study needs 0/1 labels"
            )
        y = y.astype(np.float32).reshape(-1, 1)
    rng = np.random.default_rng(seed)
    strata = y.ravel() if task in ("classification", "binary") else None  # keep class shares
    idx_train, idx_val, idx_test = split_indices(
        len(x), cfg.val_fraction, cfg.test_fraction, rng, strata=strata
    )
    if len(idx_train) < min_rows:
        raise DataError(
            f"data: the training split has {len(idx_train)} rows, fewer than one "
            f"batch ({min_rows}); lower batch_size or val_fraction"
        )
    if len(idx_val) == 0:  # val_loss would read 0.0 and every decision would trust it
        raise DataError(
            f"data: the validation split is empty ({len(x)} rows, val_fraction "
            f"{cfg.val_fraction}, rounded per class); give more data or raise val_fraction"
        )
    if task == "regression":
        y = y.astype(np.float32).reshape(len(y), -1)  # one target may come as a 1-D array
    mean, std, t_mean, t_std = scale_stats(x[idx_train], y[idx_train], cfg, task)
    if t_mean is not None:
        y = (y - t_mean) / t_std
    x = (x - mean) / std
    shape = tuple(cfg.image_shape) if cfg.image_shape else x.shape[1:]
    x = x.reshape(len(x), *shape)

    def take(idx: np.ndarray) -> Split:
        return Split(np.ascontiguousarray(x[idx]), np.ascontiguousarray(y[idx]))

    out_dim = len(classes) if task == "classification" else (1 if task == "binary" else y.shape[1])
    return PreparedData(
        train=take(idx_train),
        val=take(idx_val),
        test=take(idx_test) if len(idx_test) else None,
        task=task,
        input_shape=shape,
        output_dim=out_dim,
        feature_mean=mean,
        feature_std=std,
        target_mean=t_mean,
        target_std=t_std,
        classes=classes,
        flip=_flip(cfg, task, t_mean, t_std),
    )


def _flip(cfg: DataConfig, task: str, t_mean, t_std) -> FlipPlan | None:
    spec = cfg.augment.hflip if cfg.augment else None
    if spec is None:
        return None
    if task != "regression":
        empty = np.zeros(0)
        return flip_plan([], [], spec.x_suffix, empty, empty, 1, spec.probability)
    width = cfg.image_shape[-1]
    return flip_plan(cfg.labels, spec.swap, spec.x_suffix, t_mean, t_std, width, spec.probability)


def split_indices(
    n: int,
    val_fraction: float,
    test_fraction: float,
    rng: np.random.Generator,
    strata: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded split of range(n); with `strata`, each class is split in the same proportions."""
    groups = (
        [np.arange(n)]
        if strata is None
        else [np.flatnonzero(strata == c) for c in np.unique(strata)]
    )
    parts: list[list[np.ndarray]] = [[], [], []]
    for g in groups:
        g = rng.permutation(g)
        n_val, n_test = round(len(g) * val_fraction), round(len(g) * test_fraction)
        parts[1].append(g[:n_val])
        parts[2].append(g[n_val : n_val + n_test])
        parts[0].append(g[n_val + n_test :])
    return tuple(np.sort(np.concatenate(p)).astype(np.int64) for p in parts)  # type: ignore


def feature_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std per column. Constant columns get std 1: left unscaled, not divided by 0 (D1)."""
    mean = x.mean(axis=0, dtype=np.float64).astype(np.float32)
    std = x.std(axis=0, dtype=np.float64).astype(np.float32)
    std[std < 1e-8] = 1.0
    return mean, std


def _features(table: pa.Table, cfg: DataConfig) -> tuple[np.ndarray, list[str]]:
    if cfg.image_column:
        col = table.column(cfg.image_column).combine_chunks()
        if not pa.types.is_list(col.type) and not pa.types.is_fixed_size_list(col.type):
            raise DataError(
                f"data.image_column: column {cfg.image_column!r} holds {col.type}, "
                "not lists of pixel values"
            )
        lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
        if len(set(lengths.tolist())) > 1:
            raise DataError(
                f"data.image_column: rows of {cfg.image_column!r} have different "
                f"lengths ({sorted(set(lengths.tolist()))[:5]}); images must be one size"
            )
        flat = pc.list_flatten(col)
        _check_numeric(flat.type, cfg.image_column)
        x = flat.to_numpy(zero_copy_only=False).astype(np.float32).reshape(len(col), -1)
        _check_image_shape(x, cfg)
        return x, [cfg.image_column]
    index = set(pandas_index_columns(table.schema))  # never a feature unless named as one
    names = cfg.features or [
        n for n in table.column_names if n not in cfg.labels and n not in index
    ]
    for n in names:
        _check_numeric(table.schema.field(n).type, n)
    x = (
        np.column_stack(
            [table.column(n).to_numpy(zero_copy_only=False).astype(np.float32) for n in names]
        )
        if names
        else np.empty((table.num_rows, 0), np.float32)
    )
    _check_image_shape(x, cfg)
    return x, names


def pandas_index_columns(schema: pa.Schema) -> list[str]:
    """The columns pandas wrote its DataFrame index into (`df.to_parquet()` keeps the index,
    as `__index_level_0__` or under its own name); the pandas metadata names them."""
    meta = schema.pandas_metadata or {}
    stored = [c for c in meta.get("index_columns", []) if isinstance(c, str)]  # not RangeIndex
    return [c for c in stored if c in schema.names] + [
        n for n in schema.names if n.startswith("__index_level_") and n not in stored
    ]


def _check_image_shape(x: np.ndarray, cfg: DataConfig) -> None:
    if cfg.image_shape and int(np.prod(cfg.image_shape)) != x.shape[1]:
        raise DataError(
            f"data.image_shape: {cfg.image_shape} holds {int(np.prod(cfg.image_shape))}"
            f" values but each row has {x.shape[1]} features"
        )


def _check_numeric(dtype: pa.DataType, column: str) -> None:
    if not (
        pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_boolean(dtype)
    ):
        raise DataError(
            f"data: column {column!r} holds {dtype}, not numbers; encode it as numbers "
            "or leave it out of data.features"
        )


def _labels(table: pa.Table, cfg: DataConfig, task: str) -> np.ndarray:
    cols = []
    for n in cfg.labels:
        _check_numeric(table.schema.field(n).type, n)
        col = table.column(n)
        if col.null_count and not (task == "regression" and cfg.missing_labels != "refuse"):
            raise DataError(
                f"data: label column {n!r} has {col.null_count} empty (null) rows; "
                "drop or fill them"
                + (", or set data.missing_labels: drop or mask" if task == "regression" else "")
            )
        cols.append(col.to_numpy(zero_copy_only=False).astype(np.float64))
    y = np.column_stack(cols)
    if task == "regression":
        return y.astype(np.float32)
    if len(cfg.labels) != 1:
        raise DataError(f"data.label: a {task} study has one label column, not {len(cfg.labels)}")
    return y[:, 0]


def _check_finite(
    x: np.ndarray,
    names: list[str],
    y: np.ndarray,
    labels: list[str],
    allow_nan_labels: bool = False,
) -> None:
    problems = []
    bad_x = ~np.isfinite(x)
    if bad_x.any():
        cols = bad_x.sum(axis=0)
        for j in np.flatnonzero(cols)[:10]:
            name = names[j] if len(names) == x.shape[1] else f"{names[0]}[{j}]"
            problems.append(
                f"data: feature column {name!r} has {int(cols[j])} rows that are "
                "NaN, inf or null; drop or impute them"
            )
    y2 = y.reshape(len(y), -1)
    bad_y = (np.isinf(y2) if allow_nan_labels else ~np.isfinite(y2)).sum(axis=0)
    for j in np.flatnonzero(bad_y):
        problems.append(
            f"data: label column {labels[j]!r} has {int(bad_y[j])} rows that are NaN "
            "or inf; drop them (missing regression labels: data.missing_labels: drop or mask)"
        )
    if problems:
        raise DataError(problems)


def _check_classes(y: np.ndarray, cfg: DataConfig) -> list[int]:
    label = cfg.labels[0]
    if not np.all(y == np.round(y)):
        n = int((y != np.round(y)).sum())
        raise DataError(
            f"data: label column {label!r} has {n} non-integer values; a "
            "classification study needs class ids (use task: regression otherwise)"
        )
    found = sorted(set(np.unique(y).astype(int).tolist()))
    if found[0] < 0:  # first: undeclared classes are 0..max, so -1 would look "outside"
        raise DataError(
            f"data: label column {label!r} has {int((y < 0).sum())} rows with negative "
            "class ids; use 0..C-1"
        )
    declared = sorted(cfg.classes) if cfg.classes is not None else list(range(max(found) + 1))
    outside = np.isin(y.astype(int), declared, invert=True)
    if outside.any():
        bad = sorted(set(y[outside].astype(int).tolist()))[:10]
        raise DataError(
            f"data: label column {label!r} has {int(outside.sum())} rows outside the "
            f"declared classes {_span(declared)} (values {bad}); fix the labels or "
            "data.classes"
        )
    return declared


def _span(values: list[int]) -> str:
    return f"0..{values[-1]}" if values == list(range(len(values))) else str(values)
