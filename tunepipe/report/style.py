"""Shared look of the report's plots: colours, figure creation, scale choices, saving.

Figures are built with matplotlib's object API (`Figure`, rendered by the Agg canvas) rather than
pyplot, so writing a report neither switches the process's global backend nor leaks open figures
when it runs inside a long-lived `tunepipe run` process.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from tunepipe_schedulers.reasons import StopReason

# One colour per stop reason, used by every plot and the HTML badges, so a reason reads the same
# everywhere (colour-blind-friendly Okabe-Ito hues where possible).
REASON_COLORS: dict[str, str] = {
    StopReason.COMPLETED.value: "#009E73",
    StopReason.PRUNED.value: "#8C9BAB",
    StopReason.DIVERGED.value: "#D55E00",
    StopReason.OVERFITTING.value: "#E69F00",
    StopReason.PLATEAU.value: "#0072B2",
    StopReason.ERROR.value: "#6B2E3F",
}
UNKNOWN_COLOR = "#B0B0B0"

# Line colours for trials in rank order (best first); the best trial is always the dark blue.
TRIAL_COLORS = ["#1F4E79", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#7F7F7F"]
TRAIN_COLOR, VAL_COLOR = "#0072B2", "#D55E00"
DPI = 100


def reason_color(reason: object) -> str:
    """The colour of a stop reason; grey for a reason outside the closed set or a missing one."""
    return REASON_COLORS.get(str(reason), UNKNOWN_COLOR)


def trial_color(rank: int) -> str:
    """The line colour of the trial ranked `rank` (0 = best)."""
    return TRIAL_COLORS[rank % len(TRIAL_COLORS)]


@dataclass(frozen=True)
class Margins:
    """Space around and between a figure's panels, in inches.

    The report's text sizes are fixed (8-11 pt), so the space its labels need is known before
    drawing. matplotlib's constrained layout measures every label in a dry-run draw before the
    real one: about 45% of a picture's drawing time, on the critical path of every study's end
    (benchmarks/time_to_quality.py). Each picture states its margins instead; labels whose length
    varies (legend entries, category names) size their margin from their text (`text_inches`).
    """

    left: float = 0.6
    right: float = 0.15
    top: float = 0.2
    bottom: float = 0.45
    wgap: float = 0.6  # between panels side by side
    hgap: float = 0.75  # between rows: the x labels above and the titles below


def new_figure(
    width: float, height: float, margins: Margins | None = None, grid: tuple[int, int] = (1, 1)
) -> Figure:
    """A figure with the report's fonts and background. With `margins`, its `grid` of panels
    (rows, columns) is placed by them; without, by matplotlib's constrained layout."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout=None if margins else "constrained")
    fig.set_facecolor("white")
    if margins is not None:
        nrows, ncols = grid
        m = margins
        panel_w = (width - m.left - m.right - (ncols - 1) * m.wgap) / ncols
        panel_h = (height - m.top - m.bottom - (nrows - 1) * m.hgap) / nrows
        fig.subplots_adjust(
            left=m.left / width,
            right=1 - m.right / width,
            bottom=m.bottom / height,
            top=1 - m.top / height,
            wspace=m.wgap / panel_w,
            hspace=m.hgap / panel_h,
        )
    return fig


def text_inches(text: str, size: float) -> float:
    """About how wide `text` is at `size` points (a DejaVu Sans character is ~0.6 em on average;
    digits and capitals run wider, so this errs wide)."""
    return len(text) * size * 0.62 / 72


def tidy(ax: Axes) -> None:
    """Light grid, no top/right spines: the data carries the picture."""
    ax.grid(True, which="major", color="#E5E7EB", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(which="both", labelsize=8)  # a log axis labels minor ticks too


def epoch_axis(ax: Axes) -> None:
    """Label the x axis as epochs, with whole-number ticks only (there is no epoch 1.5)."""
    ax.set_xlabel("epoch", fontsize=8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def spans_decades(values: np.ndarray, decades: float = 2.0) -> bool:
    """True when the finite values are all positive and span more than `decades` decades.

    Loss curves and LR schedules that fall by orders of magnitude are unreadable on a linear axis.
    """
    v = values[np.isfinite(values)]
    if v.size < 2 or np.any(v <= 0):
        return False
    return bool(np.log10(v.max() / v.min()) > decades)


def set_scale(ax: Axes, values: np.ndarray, axis: str = "y") -> None:
    """Log scale on `axis` when `values` span decades, linear otherwise."""
    if spans_decades(values):
        (ax.set_yscale if axis == "y" else ax.set_xscale)("log")


def no_data(ax: Axes, text: str) -> None:
    """Mark a panel that has nothing to show, so an empty panel is never mistaken for a bug."""
    ax.text(
        0.5,
        0.5,
        text,
        ha="center",
        va="center",
        transform=ax.transAxes,
        fontsize=9,
        color="#6B7280",
    )
    ax.set_xticks([])
    ax.set_yticks([])


def save(fig: Figure, path: Path) -> Path:
    """Write the figure as PNG and return its path."""
    fig.savefig(path, format="png", dpi=DPI, facecolor="white")
    return path
