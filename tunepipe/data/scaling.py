"""How features and regression targets are scaled (D1, P2), and rows with missing labels.

standard: mean 0, std 1 per column. range (the case study): features to [0, 1], targets to
[-1, 1], from the training split's min and max. Images get one number per channel, not per
pixel, under `range` or a flip: per-pixel statistics are not mirror-symmetric, so a flipped
image would be scaled with the other side's numbers.
"""

from __future__ import annotations

import numpy as np

from tunepipe.config import DataConfig
from tunepipe.errors import DataError


def scale_stats(
    x_train: np.ndarray, y_train: np.ndarray, cfg: DataConfig, task: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(feature offset, feature scale, target offset, target scale): value = (raw - off) / scale.
    Target entries are None unless the task is regression; NaN labels are ignored."""
    width = x_train.shape[1:]
    if not cfg.normalize:
        mean, std = np.zeros(width, np.float32), np.ones(width, np.float32)
    elif cfg.image_shape and (cfg.scale == "range" or (cfg.augment and cfg.augment.hflip)):
        mean, std = _per_channel(x_train, cfg.image_shape[0], cfg.scale)
    else:
        mean, std = _column_stats(x_train, cfg.scale, low=0.0)
    if task != "regression":
        return mean, std, None, None
    if not cfg.standardize_targets:
        ones = np.ones(y_train.shape[1:], np.float32)
        return mean, std, np.zeros_like(ones), ones
    t_mean, t_std = _column_stats(y_train, cfg.scale, low=-1.0)
    return mean, std, t_mean, t_std


def _column_stats(v: np.ndarray, scale: str, low: float) -> tuple[np.ndarray, np.ndarray]:
    """standard: nan-mean and nan-std; range: maps [min, max] to [low, 1]."""
    v = v.astype(np.float64)
    if not np.isfinite(v).any(axis=0).all():
        raise DataError("data: a label column has no value in the training split; drop it")
    if scale == "range":
        lo, hi = np.nanmin(v, axis=0), np.nanmax(v, axis=0)
        spread = (hi - lo) / (1 - low)
        offset = lo - low * spread
    else:
        offset, spread = np.nanmean(v, axis=0), np.nanstd(v, axis=0)
    spread[spread < 1e-8] = 1.0  # a constant column is left unscaled, not divided by 0 (D1)
    return offset.astype(np.float32), spread.astype(np.float32)


def _per_channel(x: np.ndarray, channels: int, scale: str) -> tuple[np.ndarray, np.ndarray]:
    """One offset and scale per image channel, repeated over its pixels (flip-symmetric)."""
    per = x.reshape(len(x), channels, -1).transpose(1, 0, 2).reshape(channels, -1).T
    offset, spread = _column_stats(per, scale, low=0.0)
    pixels = x.shape[1] // channels
    return np.repeat(offset, pixels), np.repeat(spread, pixels)


def label_coverage(y: np.ndarray, labels: list[str]) -> dict:
    """How many rows have every label, and each label (the case study's first look at the data)."""
    present = np.isfinite(y.reshape(len(y), -1))
    return {
        "rows": len(y),
        "complete": int(present.all(axis=1).sum()),
        "per_label": {name: int(n) for name, n in zip(labels, present.sum(axis=0), strict=True)},
    }


def missing_label_rows(
    x: np.ndarray, y: np.ndarray, cfg: DataConfig
) -> tuple[np.ndarray, np.ndarray]:
    """drop: keep rows with every label; mask: keep rows with at least one (NaN stays, masked)."""
    if cfg.missing_labels == "refuse":
        return x, y
    present = np.isfinite(y.reshape(len(y), -1))
    keep = present.all(axis=1) if cfg.missing_labels == "drop" else present.any(axis=1)
    if not keep.any():
        raise DataError(
            f"data: no row has {'every' if cfg.missing_labels == 'drop' else 'any'} label of "
            f"{cfg.labels[:3]}{' ...' if len(cfg.labels) > 3 else ''} (missing_labels: "
            f"{cfg.missing_labels})"
        )
    return x[keep], y[keep]
