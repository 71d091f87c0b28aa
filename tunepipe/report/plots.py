"""The report's plots, one function per figure, each writing a PNG and returning its path.

A function returns None when the run holds nothing it could draw (no history, no sanity stage...),
so the HTML can say so in words instead of embedding an empty picture. Non-finite values (a diverged
trial's NaN/inf) are dropped before drawing and never reach matplotlib's autoscaling.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from tunepipe.report.rundir import (
    Columns,
    RunData,
    SanityData,
    floats,
    trial_history,
    trial_row,
)
from tunepipe.report.style import (
    REASON_COLORS,
    TRAIN_COLOR,
    VAL_COLOR,
    Margins,
    epoch_axis,
    new_figure,
    no_data,
    reason_color,
    save,
    set_scale,
    spans_decades,
    text_inches,
    tidy,
    trial_color,
)

DIAGNOSTICS = ("grad_norm", "update_ratio", "top_prob", "dead_relu")
HEALTHY_UPDATE_BAND = (1e-4, 1e-2)  # playbook L1: update/weight norm "near 1e-3", a decade each way


def curve_columns(history: Columns, metric: str, mode: str = "min") -> list[str]:
    """The loss-like history columns to draw as curves (playbook P3: read the loss).

    train_loss/val_loss when reported, else every column with "loss" in its name (a user
    trainable's own names). The study metric joins them when it is a lower-is-better quantity
    (an error such as val_rmse) or when there is no loss at all; an accuracy would only squash
    the loss axis.
    """
    present = [c for c in history if c not in ("trial_id", "epoch")]
    cols = [c for c in ("train_loss", "val_loss") if c in present]
    if not cols:
        cols = [c for c in present if "loss" in c.lower()]
    if metric in present and metric not in cols and (mode == "min" or not cols):
        cols.append(metric)
    return cols


# Panels with a title over a suptitle; x labels under each panel.
GRID = Margins(left=0.6, right=0.15, top=0.62, bottom=0.45, wgap=0.6, hgap=0.75)


def _grid(n: int, ncols: int = 3, panel: tuple[float, float] = (3.9, 2.7), margins: Margins = GRID):
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    fig = new_figure(panel[0] * ncols, panel[1] * nrows, margins, (nrows, ncols))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _finite_line(ax: Axes, x: np.ndarray, y: np.ndarray, **kw) -> np.ndarray:
    """Plot only the finite points; return them so the caller can choose a scale."""
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.any():
        ax.plot(x[ok], y[ok], **kw)
    return y[ok]


def plot_curves(run: RunData, trial_ids: Sequence[str], path: Path) -> Path | None:
    """Training vs validation loss per epoch, one small panel per trial (best first).

    Playbook P6: the gap between the two curves tells overfitting and when to stop (E1).
    """
    cols = curve_columns(run.history, run.metric, run.mode)
    if not cols or not trial_ids or not run.history:
        return None
    fig, axes = _grid(len(trial_ids))
    styles = {"train_loss": (TRAIN_COLOR, "-"), "val_loss": (VAL_COLOR, "-")}
    for rank, (ax, tid) in enumerate(zip(axes, trial_ids, strict=True)):
        hist, row = trial_history(run, tid), trial_row(run, tid)
        epochs = floats(hist.get("epoch"))
        drawn = [np.array([])]
        for j, col in enumerate(cols):
            color, ls = styles.get(col, (trial_color(j + 2), "--"))
            drawn.append(
                _finite_line(
                    ax,
                    epochs,
                    floats(hist.get(col)),
                    color=color,
                    linestyle=ls,
                    linewidth=1.6,
                    label=col,
                )
            )
        _mark_curve_panel(ax, rank, tid, row, hist, cols, np.concatenate(drawn))
    fig.suptitle("Loss per epoch: training vs validation (best trial first)", fontsize=11)
    return save(fig, path)


def _mark_curve_panel(
    ax: Axes, rank: int, tid: str, row: dict, hist: Columns, cols: list[str], drawn: np.ndarray
) -> None:
    reason = row.get("stop_reason") or "?"
    ax.set_title(
        f"#{rank + 1}  {tid}  ·  {reason}", fontsize=9, color=reason_color(reason), loc="left"
    )
    tidy(ax)
    if drawn.size == 0:
        no_data(ax, "no finite loss values\n(diverged before the first report?)")
        return
    set_scale(ax, drawn)
    best_epoch = floats([row.get("best_epoch")])[0]
    if np.isfinite(best_epoch):
        ax.axvline(best_epoch, color="#374151", linestyle=":", linewidth=1, label="best epoch")
    _mark_divergence(ax, floats(hist.get("epoch")), [hist.get(c) for c in cols])
    ax.set_xlabel("epoch", fontsize=8)
    if rank == 0:
        ax.legend(fontsize=7, frameon=False)


def _mark_divergence(ax: Axes, epochs: np.ndarray, curves: list[list | None]) -> None:
    """Shade the epochs from the first reported NaN/inf on: a curve that ends in non-finite
    values would otherwise just stop, and a diverged trial would look merely short (P5)."""
    bad = np.zeros(epochs.size, dtype=bool)
    for values in curves:
        v = floats(values)
        if v.size == bad.size:
            bad |= np.isinf(v) | _nan_not_null(values)
    if not bad.any() or not np.isfinite(epochs[bad]).any():
        return
    first, last = np.nanmin(epochs[bad]), np.nanmax(epochs)
    color = reason_color("diverged")
    ax.axvspan(first - 0.5, last + 0.5, color=color, alpha=0.10, linewidth=0)
    ax.text(
        0.98,
        0.95,
        f"NaN/inf from epoch {first:g}",
        transform=ax.transAxes,
        ha="right",
        va="top",
        fontsize=8,
        color=color,
    )
    ax.set_xlim(right=last + 0.5)


def _nan_not_null(values: list | None) -> np.ndarray:
    """NaN that was reported (a float NaN), as opposed to a null for a metric not reported."""
    return np.array([isinstance(v, float) and v != v for v in values or []], dtype=bool)


def plot_stop_reasons(counts: dict[str, int], path: Path) -> Path | None:
    """Horizontal bars: how many trials ended for each reason, in the reason's colour."""
    items = [(r, int(c)) for r, c in counts.items() if c]
    if not items:
        return None
    items.sort(key=lambda rc: -rc[1])
    names = [r for r, _ in items][::-1]
    left = max(text_inches(r, 8) for r in names) + 0.25  # the reasons label the bars
    fig = new_figure(6.0, 0.45 * len(items) + 1.0, Margins(left=left, right=0.35, top=0.15))
    ax = fig.subplots()
    values = [c for _, c in items][::-1]
    ax.barh(names, values, color=[reason_color(r) for r in names], height=0.6)
    for y, v in enumerate(values):
        ax.text(v, y, f" {v}", va="center", fontsize=9)
    ax.set_xlabel("trials", fontsize=9)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # there is no half a trial
    ax.set_xlim(0, max(values) * 1.15)
    tidy(ax)
    ax.grid(False, axis="y")
    return save(fig, path)


def plot_lr_history(run: RunData, trial_ids: Sequence[str], path: Path) -> Path | None:
    """Learning rate per epoch for the top trials; triangles mark decays (playbook L1, P5)."""
    if "lr" not in run.history or not trial_ids:
        return None
    labels = [f"#{rank + 1} {tid}" for rank, tid in enumerate(trial_ids)]
    legend = 0.55 + max(text_inches(t, 7) for t in labels)  # beside the plot, on the right
    fig = new_figure(7.5, 3.4, Margins(left=0.95, right=legend, top=0.15))
    ax = fig.subplots()
    drawn = [np.array([])]
    for rank, tid in enumerate(trial_ids):
        hist = trial_history(run, tid)
        x, y = floats(hist.get("epoch")), floats(hist.get("lr"))
        ok = np.isfinite(x) & np.isfinite(y)
        if not ok.any():
            continue
        x, y = x[ok], y[ok]
        color = trial_color(rank)
        ax.step(x, y, where="post", color=color, linewidth=1.6, label=labels[rank])
        decays = np.nonzero(np.diff(y) < 0)[0] + 1
        ax.plot(x[decays], y[decays], "v", color=color, markersize=6)
        drawn.append(y)
    values = np.concatenate(drawn)
    if values.size == 0:
        return None
    if spans_decades(values, 1.0):
        ax.set_yscale("log")
    epoch_axis(ax)
    ax.set_ylabel("learning rate", fontsize=9)
    tidy(ax)
    ax.legend(fontsize=7, frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return save(fig, path)


def _is_numeric(values: list) -> bool:
    vals = [v for v in values if v is not None]
    return bool(vals) and all(
        isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
        for v in vals
    )


def _x_positions(values: list, rng: np.random.Generator) -> tuple[np.ndarray, list[str] | None]:
    """Numeric values as they are; categories as jittered strip positions (with their labels)."""
    if _is_numeric(values):
        return floats(values), None
    labels = sorted({str(v) for v in values})
    pos = np.array([labels.index(str(v)) for v in values], dtype=float)
    return pos + rng.uniform(-0.15, 0.15, size=pos.size), labels


def plot_hyperparameters(run: RunData, best: str | None, path: Path) -> Path | None:
    """Each `config.*` hyperparameter against the trial's best metric, coloured by stop reason."""
    names = [c for c in run.results if c.startswith("config.")]
    if not names:
        return None
    y = floats(run.results.get(run.metric))
    reasons = [str(r) for r in run.results.get("stop_reason") or ["?"] * len(y)]
    colors = np.array([reason_color(r) for r in reasons])
    is_best = np.array([t == best for t in run.trial_ids], dtype=bool)
    rng = np.random.default_rng(0)  # fixed jitter: the same run always gives the same picture
    positions = [_x_positions(run.results[name], rng) for name in names]
    # Category names along an x axis are turned 20 degrees once there are more than three.
    turned = [text_inches(t, 8) * 0.34 for _, ls in positions if ls and len(ls) > 3 for t in ls]
    extra = max(turned, default=0.0)
    margins = Margins(left=0.72, top=0.62, bottom=0.75 + extra, wgap=0.75, hgap=0.75 + extra)
    fig, axes = _grid(len(names), panel=(3.6, 2.8), margins=margins)
    for ax, name, (x, labels) in zip(axes, names, positions, strict=True):
        ax.set_title(name.removeprefix("config."), fontsize=9, loc="left")
        _hp_panel(ax, x, y, colors, is_best, labels)
        ax.set_ylabel(run.metric, fontsize=8)
    arrow = "lower is better" if run.mode == "min" else "higher is better"
    hidden = int((~np.isfinite(y)).sum())
    note = f"; {hidden} trial(s) without a finite value not shown" if hidden else ""
    fig.suptitle(f"Hyperparameters vs best {run.metric} ({arrow}; ★ best trial{note})", fontsize=11)
    present = sorted(set(reasons), key=lambda r: (r not in REASON_COLORS, r))
    fig.legend(
        handles=[Patch(color=reason_color(r), label=r) for r in present],
        loc="lower center",  # in the bottom margin, under the panels' x labels
        ncols=len(present),
        fontsize=8,
        frameon=False,
    )
    return save(fig, path)


def _hp_panel(
    ax: Axes,
    x: np.ndarray,
    y: np.ndarray,
    colors: np.ndarray,
    is_best: np.ndarray,
    labels: list[str] | None,
) -> None:
    """One hyperparameter's scatter (or strip plot for categories) of the finite metric values."""
    tidy(ax)
    ok = np.isfinite(x) & np.isfinite(y)
    if not ok.any():
        no_data(ax, "no finite metric values")
        return
    ax.scatter(x[ok], y[ok], c=colors[ok], s=28, alpha=0.85, edgecolors="white", linewidths=0.5)
    star = ok & is_best
    if star.any():
        ax.scatter(
            x[star],
            y[star],
            marker="*",
            s=200,
            facecolors="none",
            edgecolors="#111827",
            linewidths=1.2,
        )
    _hp_axes(ax, x[ok], labels)
    set_scale(ax, y[ok])


def _hp_axes(ax: Axes, x: np.ndarray, labels: list[str] | None) -> None:
    if labels is not None:
        ax.set_xticks(range(len(labels)), labels, rotation=20 if len(labels) > 3 else 0)
        ax.set_xlim(-0.5, len(labels) - 0.5)
    elif spans_decades(x, 1.0):
        ax.set_xscale("log")  # a positive range over decades was almost surely sampled loguniform


def plot_lr_range(sanity: SanityData, path: Path) -> Path | None:
    """The LR range test: loss against a rising learning rate, suggested LR marked (P5, L1)."""
    lrs, losses = sanity.lrs, sanity.losses
    ok = np.isfinite(lrs) & np.isfinite(losses) & (lrs > 0)
    if ok.sum() < 2:
        return None
    fig = new_figure(7.5, 3.4, Margins(left=0.8, top=0.15, right=0.2, bottom=0.5))
    ax = fig.subplots()
    ax.plot(lrs[ok], losses[ok], color="#9CA3AF", linewidth=1, label="loss")
    shown = losses[ok]
    if sanity.smoothed.size == lrs.size:
        sm_ok = ok & np.isfinite(sanity.smoothed)
        ax.plot(
            lrs[sm_ok], sanity.smoothed[sm_ok], color=TRAIN_COLOR, linewidth=2, label="smoothed"
        )
    if sanity.suggested_range:
        ax.axvspan(*sanity.suggested_range, color="#009E73", alpha=0.12, label="suggested range")
    if sanity.suggested_lr:
        ax.axvline(
            sanity.suggested_lr,
            color=VAL_COLOR,
            linestyle="--",
            linewidth=1.5,
            label=f"suggested lr = {sanity.suggested_lr:.3g}",
        )
    ax.set_xscale("log")
    _clip_explosion(ax, shown)
    ax.set_xlabel("learning rate", fontsize=9)
    ax.set_ylabel("training loss", fontsize=9)
    tidy(ax)
    ax.legend(fontsize=8, frameon=False)
    return save(fig, path)


def _clip_explosion(ax: Axes, losses: np.ndarray) -> None:
    """Cut the y axis above the starting loss: the test ends in an explosion that would
    otherwise flatten the interesting valley into a line."""
    start, low = losses[: max(1, losses.size // 10)].mean(), losses.min()
    top = min(losses.max(), start + 0.5 * (start - low)) if start > low else losses.max()
    if top > low:
        ax.set_ylim(low - 0.05 * (top - low), top)


def plot_diagnostics(
    run: RunData, trial_id: str | None, path: Path, title: str | None = None
) -> Path | None:
    """Training-health diagnostics of one trial over epochs; None when none were reported."""
    if trial_id is None:
        return None
    hist = trial_history(run, trial_id)
    reported = [d for d in DIAGNOSTICS if np.isfinite(floats(hist.get(d))).any()]
    if not reported:
        return None
    epochs = floats(hist.get("epoch"))
    fig, axes = _grid(len(DIAGNOSTICS), ncols=2, panel=(4.4, 2.6), margins=DIAGNOSTIC_GRID)
    for ax, name in zip(axes, DIAGNOSTICS, strict=True):
        tidy(ax)
        ax.set_title(name, fontsize=9, loc="left")
        if name not in reported:
            no_data(ax, f"{name} not reported")
            continue
        values = _finite_line(ax, epochs, floats(hist.get(name)), color=TRAIN_COLOR, linewidth=1.6)
        _diagnostic_axes(ax, name, values)
        epoch_axis(ax)
    fig.suptitle(title or f"Diagnostics of trial {trial_id}", fontsize=11)
    return save(fig, path)


# update_ratio's log axis labels ticks like 3x10^-3: wider than the loss panels' labels.
DIAGNOSTIC_GRID = Margins(left=0.75, right=0.15, top=0.62, bottom=0.45, wgap=0.75, hgap=0.75)


def _diagnostic_axes(ax: Axes, name: str, values: np.ndarray) -> None:
    if name == "update_ratio":
        ax.axhspan(*HEALTHY_UPDATE_BAND, color="#009E73", alpha=0.12, label="healthy (L1)")
        ax.axhline(1e-3, color="#009E73", linestyle="--", linewidth=1)
        if values.size and np.all(values > 0):
            ax.set_yscale("log")
        ax.legend(fontsize=7, frameon=False, loc="upper right")
    elif name in ("top_prob", "dead_relu"):
        ax.set_ylim(-0.02, 1.02)  # fractions and probabilities: keep the full scale for honesty
    else:
        set_scale(ax, values)
