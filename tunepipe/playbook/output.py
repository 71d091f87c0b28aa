"""The sanity stage's outputs: a compact rich table, sanity.json and two PNG plots.

Files go through pyarrow's filesystems (as every run-folder file does), so a run folder on a URI
gets them too. Plots are drawn with matplotlib's Agg backend: no display needed.
"""

from __future__ import annotations

import io
import json
import math
from typing import Any

from tunepipe.playbook.result import SanityResult
from tunepipe.storage import RunLocation

JSON_FILE = "sanity.json"
LR_PLOT = "sanity_lr_range.png"
OVERFIT_PLOT = "sanity_overfit.png"
STYLE = {"pass": "green", "warn": "yellow", "fail": "bold red"}


def print_table(result: SanityResult, console: Any = None) -> None:
    """check | status | detail, then the causes of every check that did not pass."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    verdict = "[green]passed[/]" if result.passed else "[bold red]failed[/]"
    table = Table(title=f"sanity stage {verdict} in {result.seconds:.1f} s", title_justify="left")
    for col in ("check", "status", "detail"):
        table.add_column(col, overflow="fold")
    for c in result.checks:
        table.add_row(c.name, f"[{STYLE[c.status]}]{c.status}[/]", c.detail)
    console.print(table)
    for note in result.notes:
        console.print(f"[dim]note:[/] {note}")
    for c in result.checks:
        if c.status != "pass" and c.causes:
            console.print(f"[{STYLE[c.status]}]{c.name}[/] — likely causes, most likely first:")
            for cause in c.causes:
                console.print(f"  • {cause}", highlight=False)


def write_outputs(result: SanityResult, loc: RunLocation) -> list[str]:
    """sanity.json and the PNGs into the folder `loc` names; returns the file names written."""
    loc.write_text(JSON_FILE, json.dumps(result.to_json(), indent=1) + "\n")
    written = [JSON_FILE]
    for name, draw in ((LR_PLOT, _draw_lr_range), (OVERFIT_PLOT, _draw_overfit)):
        png = _render(draw, result)
        if png is not None:
            with loc.fs.open_output_stream(f"{loc.path}/{name}") as out:
                out.write(png)
            written.append(name)
    return written


def _render(draw: Any, result: SanityResult) -> bytes | None:
    fig = figure(draw, result)
    if fig is None:
        return None
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def figure(draw: Any, result: SanityResult) -> Any:
    """The matplotlib Figure `draw` (`_draw_lr_range`, `_draw_overfit`) makes, or None when the
    result has nothing for it."""
    from tunepipe.report.style import Margins, new_figure  # Agg, no pyplot: no global state

    # A title above, axis labels at 10 pt, and log tick labels like 3x10^-1 on the left.
    fig = new_figure(6.4, 3.6, Margins(left=0.95, right=0.2, top=0.35, bottom=0.55))
    return fig if draw(fig.subplots(), result) else None


def _draw_lr_range(ax: Any, result: SanityResult) -> bool:
    r = result.lr_range
    if r is None or len(r.lrs) < 2:
        return False
    ax.plot(r.lrs, r.losses, color="#9CA3AF", linewidth=1, label="loss")
    ax.plot(r.lrs, r.smoothed, color="#0072B2", linewidth=2, label="smoothed")
    if r.suggested_range:
        ax.axvspan(*r.suggested_range, color="#009E73", alpha=0.12, label="suggested range")
    if r.suggested_lr:
        ax.axvline(
            r.suggested_lr,
            color="#D55E00",
            linestyle="--",
            label=f"suggested lr = {r.suggested_lr:.3g}",
        )
    smooth = [v for v in r.smoothed if math.isfinite(v)]
    low = min([v for v in r.losses if math.isfinite(v)] + smooth, default=0.0)
    if smooth:  # the last, diverging raw losses would flatten the rest of the curve
        ax.set_ylim(low * 0.9 if low > 0 else None, max(smooth) * 1.1)
    ax.set(xscale="log", xlabel="learning rate", ylabel="training loss", title="LR range test")
    ax.legend(fontsize=8, frameon=False)
    return True


def _draw_overfit(ax: Any, result: SanityResult) -> bool:
    losses = [v if math.isfinite(v) else math.nan for v in result.overfit_curve]
    if not losses:
        return False
    ax.plot(range(1, len(losses) + 1), losses, color="#0072B2", label="training loss")
    if result.overfit_target:
        ax.axhline(result.overfit_target, color="#009E73", linestyle="--", label="target")
    if all(v > 0 for v in losses if math.isfinite(v)):
        ax.set_yscale("log")
    ax.set(xlabel="step", ylabel="loss", title="Overfit a tiny subset (P1)")
    ax.legend(fontsize=8, frameon=False)
    return True
