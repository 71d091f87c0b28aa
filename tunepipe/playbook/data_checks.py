"""Data checks of the sanity stage: finite values, feature scale (D1), class balance, leakage
between splits (P8), regression target scale (P2). numpy only, on the prepared splits."""

from __future__ import annotations

import numpy as np

from tunepipe.config import DataConfig
from tunepipe.data import PreparedData
from tunepipe.playbook.result import Check

IMBALANCE_WARN = 10.0  # largest / smallest class: beyond this, accuracy hides the small classes
FEATURE_SCALE_WARN = 3.0  # |mean| or std of unnormalised features (D1: mean 0, std 1 expected)
OUTLIER_Z_WARN = 100.0  # a validation value this many train-stds out: a near-constant column
TARGET_SCALE_WARN = 3.0  # P2: raw targets of this size make the loss start near their square
TARGET_SCALE_FAIL = 10.0  # ... and of this size dominate it (a loss of 100+ at initialisation)
LEAK_FAIL = 0.5  # half the validation rows also in training: the same rows, not duplicates


def data_checks(data: PreparedData, cfg: DataConfig) -> list[Check]:
    """Every data check that applies to the study's task, in the order they are printed."""
    checks = [finite_check(data), feature_check(data, cfg.normalize), leakage_check(data)]
    if data.task in ("classification", "binary"):
        checks.append(balance_check(data))
    if data.task == "regression":
        checks.append(target_scale_check(data, cfg.standardize_targets))
        if data.label_coverage and len(cfg.labels) > 1:
            checks.append(label_coverage_check(data.label_coverage, cfg.missing_labels))
    return checks


def label_coverage_check(coverage: dict, missing_labels: str) -> Check:
    """How many rows have every label and each one: the case study's first look at its data."""
    rows, complete = coverage["rows"], coverage["complete"]
    counts = sorted(coverage["per_label"].items(), key=lambda kv: kv[1])
    fewest = ", ".join(f"{name} {n}" for name, n in counts[:3])
    detail = (
        f"{complete:,} of {rows:,} rows ({complete / max(rows, 1):.0%}) have every label; "
        f"fewest: {fewest} (missing_labels: {missing_labels})"
    )
    return Check("label coverage", "pass", detail, values=dict(coverage))


def finite_check(data: PreparedData) -> Check:
    """NaN/inf after normalisation (raw NaN is refused when the data is read): overflow. NaN
    labels are missing ones kept by missing_labels: mask; the loss skips them."""
    bad = {
        name: int((~np.isfinite(split.x)).sum()) + int(np.isinf(split.y).sum())
        for name, split in _splits(data)
    }
    if any(bad.values()):
        where = ", ".join(f"{n} {k}" for k, n in bad.items() if n)
        return Check(
            "finite values",
            "fail",
            f"NaN/inf after normalisation ({where} values)",
            ["features or targets too large for float32: rescale them before tunepipe reads them"],
        )
    total = sum(s.x.size for _, s in _splits(data))
    return Check("finite values", "pass", f"no NaN/inf in {total:,} feature values")


def feature_check(data: PreparedData, normalized: bool) -> Check:
    """D1: training features at mean 0, std 1; constant columns and far-out validation values."""
    x = data.train.x.reshape(len(data.train), -1)
    mean, std = x.mean(axis=0), x.std(axis=0)
    live = std > 1e-6
    n_const = int((~live).sum())
    values = {"max_abs_mean": float(np.abs(mean).max()), "constant_columns": n_const}
    if live.any():
        values.update(min_std=float(std[live].min()), max_std=float(std[live].max()))
    detail = (
        f"train |mean| ≤ {values['max_abs_mean']:.2g}, std {values.get('min_std', 0):.3f}"
        f"–{values.get('max_std', 0):.3f}"
        + (f"; {n_const} constant columns (carry nothing)" if n_const else "")
    )
    scale = max(values["max_abs_mean"], values.get("max_std", 0.0))
    if not normalized and scale > FEATURE_SCALE_WARN:
        return Check(
            "feature scale",
            "warn",
            detail + " — features are not standardised",
            ["D1: set data.normalize: true (mean/std from the training split)"],
            values,
        )
    z = float(np.abs(data.val.x).max()) if len(data.val) else 0.0
    values["val_max_abs"] = z
    if normalized and z > OUTLIER_Z_WARN:
        return Check(
            "feature scale",
            "warn",
            detail + f"; validation values reach {z:.0f} train-stds",
            ["a column nearly constant in training, or outliers: check or clip that column"],
            values,
        )
    return Check("feature scale", "pass", detail, values=values)


def leakage_check(data: PreparedData) -> Check:
    """P8: validation (and test) rows that are also training rows, found by hashing each row."""
    train = _row_hashes(data.train.x)
    shared = {"val": _shared(data.val.x, train)}
    if data.test is not None:
        shared["test"] = _shared(data.test.x, train)
    values = {f"{k}_in_train": n for k, n in shared.items()}
    if not any(shared.values()):
        return Check("split leakage", "pass", "no validation/test row is also a training row")
    detail = ", ".join(
        f"{n} of {len(getattr(data, k))} {k} rows are also training rows"
        for k, n in shared.items()
        if n
    )
    worst = max(n / max(len(getattr(data, k)), 1) for k, n in shared.items())
    causes = [
        "duplicate rows in the data: drop duplicates before splitting, or validation scores "
        "are optimistic (P8)"
    ]
    if worst >= LEAK_FAIL:
        causes.insert(0, "the same rows appear twice (e.g. the file was concatenated with itself)")
    return Check("split leakage", "fail" if worst >= LEAK_FAIL else "warn", detail, causes, values)


def balance_check(data: PreparedData) -> Check:
    """Class counts in the training split; heavy imbalance makes val_acc misleading (P3)."""
    y = data.train.y.reshape(-1).astype(np.int64)
    n_classes = max(data.output_dim, 2) if data.task == "classification" else 2
    counts = np.bincount(y, minlength=n_classes)
    values = {"counts": counts.tolist()}
    empty = np.flatnonzero(counts == 0).tolist()
    if empty:
        names = [data.classes[i] if data.classes else i for i in empty][:10]
        return Check(
            "class balance",
            "warn",
            f"classes {names} have no training rows",
            ["the model can never learn to predict them: give rows of every class"],
            values,
        )
    ratio = float(counts.max() / counts.min())
    values["ratio"] = ratio
    detail = f"{len(counts)} classes, {counts.min()}–{counts.max()} rows each (ratio {ratio:.3g})"
    if ratio >= IMBALANCE_WARN:
        return Check(
            "class balance",
            "warn",
            detail + " — heavily imbalanced",
            [
                "accuracy hides the small classes: watch the loss (P3); consider class weights "
                "or resampling"
            ],
            values,
        )
    return Check("class balance", "pass", detail, values=values)


def target_scale_check(data: PreparedData, standardized: bool) -> Check:
    """P2: regression targets of order 1; a label of 10000 against an output of 0 is a huge loss."""
    y = data.train.y.reshape(len(data.train), -1).astype(np.float64)
    mean, std = np.nanmean(y, axis=0), np.nanstd(y, axis=0)  # NaN: a masked missing label
    if standardized:
        raw_m, raw_s = np.asarray(data.target_mean), np.asarray(data.target_std)
        return Check(
            "target scale",
            "pass",
            f"standardised (raw mean {_fmt(raw_m)}, std {_fmt(raw_s)})",
        )
    scale = float(max(np.abs(mean).max(), std.max()))
    values = {"mean": mean.tolist(), "std": std.tolist(), "scale": scale}
    detail = f"raw targets: mean {_fmt(mean)}, std {_fmt(std)}"
    spread = float(std.max() / max(std.min(), 1e-12))
    if scale > TARGET_SCALE_WARN:
        status = "fail" if scale > TARGET_SCALE_FAIL else "warn"
        return Check(
            "target scale",
            status,
            detail + " — targets not standardised",
            [
                "targets not standardised (P2): a loss near their square swamps the gradient; "
                "set data.standardize_targets: true"
            ],
            values,
        )
    if len(std) > 1 and spread > TARGET_SCALE_FAIL:
        causes = ["P2: keep every output's loss on the same scale; set standardize_targets: true"]
        return Check("target scale", "warn", detail + " — outputs on different scales", causes)
    return Check("target scale", "pass", detail, values=values)


def _splits(data: PreparedData) -> list[tuple[str, object]]:
    out = [("train", data.train), ("val", data.val)]
    return out + ([("test", data.test)] if data.test is not None else [])


def _row_hashes(x: np.ndarray) -> set[int]:
    rows = np.ascontiguousarray(x).reshape(len(x), -1)
    return {hash(r.tobytes()) for r in rows}


def _shared(x: np.ndarray, train: set[int]) -> int:
    rows = np.ascontiguousarray(x).reshape(len(x), -1)
    return sum(hash(r.tobytes()) in train for r in rows)


def _fmt(v: np.ndarray) -> str:
    v = np.atleast_1d(v)
    text = ", ".join(f"{float(a):.3g}" for a in v[:4])
    return text if len(v) == 1 else f"[{text}{', ...' if len(v) > 4 else ''}]"
