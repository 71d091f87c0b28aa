"""`tunepipe results RUN_DIR`: the trials table of a finished study, without opening Parquet.

Rows are results.parquet's, best first by the study's metric (trials without a finite value last);
`--json` prints them unchanged apart from NaN, which JSON lacks, written as null.
"""

from __future__ import annotations

import json
import math
from typing import Any

from tunepipe.errors import RunDirError

RESULTS_FILE = "results.parquet"
SHOWN_LAST = ("epochs", "stop_reason")  # after the config and the metrics in the table


def trial_rows(run_dir: str, top: int | None = None) -> tuple[list[dict[str, Any]], str, str]:
    """results.parquet's rows, best first (the `top` best only), and the metric and mode used."""
    from tunepipe.storage import locate_run_dir

    loc = locate_run_dir(run_dir)
    if not loc.exists(RESULTS_FILE):
        raise RunDirError(
            f"{loc.display} holds no {RESULTS_FILE}: give a run folder (<storage>/<study name>) "
            "of a study that finished (an interrupted one: `tunepipe resume` it first)"
        )
    rows = loc.read_parquet(RESULTS_FILE).to_pylist()
    summary = loc.read_json("summary.json") if loc.exists("summary.json") else {}
    metric = summary.get("metric", "val_loss")
    mode = summary.get("mode", "min")
    rows.sort(key=lambda r: _rank(r.get(metric), mode))
    return (rows[:top] if top else rows), metric, mode


def _rank(value: Any, mode: str) -> tuple[int, float]:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return (1, 0.0)
    return (0, value if mode == "min" else -value)


def print_trials(run_dir: str, top: int | None = None, as_json: bool = False) -> None:
    """Print the trials as a table (or as JSON rows) on stdout."""
    rows, metric, mode = trial_rows(run_dir, top)
    if as_json:
        print(json.dumps([{k: _json_safe(v) for k, v in r.items()} for r in rows], indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    columns = _columns(rows, metric)
    table = Table(title=f"{len(rows)} trials, best {metric} ({mode}) first")
    for name in columns:
        table.add_column(name.removeprefix("config."), justify=_justify(rows, name))
    for r in rows:
        table.add_row(*(_cell(r.get(c)) for c in columns))
    console = Console()
    if not console.is_terminal:  # piped or captured: full values, not a table cut to 80 columns
        console = Console(width=max(80, _natural_width(rows, columns)))
    console.print(table)


def _columns(rows: list[dict[str, Any]], metric: str) -> list[str]:
    """trial_id, the config, the study metric and the other metrics, epochs, stop reason."""
    names = list(rows[0]) if rows else ["trial_id", metric, *SHOWN_LAST]
    config = [n for n in names if n.startswith("config.")]
    metrics = [metric] + [
        n for n in ("val_acc", "val_rmse", "train_loss", "best_epoch") if n in names and n != metric
    ]
    return ["trial_id", *config, *metrics, *SHOWN_LAST]


def _natural_width(rows: list[dict[str, Any]], columns: list[str]) -> int:
    cells = [[c.removeprefix("config."), *(_cell(r.get(c)) for r in rows)] for c in columns]
    return sum(max(map(len, col)) + 3 for col in cells) + 1


def _justify(rows: list[dict[str, Any]], name: str) -> str:
    numeric = any(isinstance(r.get(name), (int, float)) for r in rows)
    return "right" if numeric else "left"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _json_safe(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value
