"""`tunepipe report --compare RUN_DIR ...`: the case study's table (net, epochs, train loss,
valid loss, RMSE in pixels) and every run's validation curve on one plot.

Each row is a run folder's best trial: its epochs run, its training and validation loss at the
best epoch (dropout on for training loss, off for validation, as the playbook warns) and its
validation RMSE in the targets' own units. A specialists folder shows its combined RMSE. With
`eval_file`, every run's model also predicts the same held-out Parquet file, so runs trained on
different rows (the nets on complete rows, the specialists on each group's rows) compare fairly.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tunepipe.errors import RunDirError


@dataclass
class CompareRow:
    name: str
    epochs: int | None
    train_loss: float | None
    val_loss: float | None
    val_rmse: float | None
    eval_rmse: float | None = None
    curve: tuple[list[int], list[float]] | None = None


def compare_runs(run_dirs: list[str], eval_file: str | None = None) -> list[CompareRow]:
    """One row per run folder, in the order given."""
    rows = [_specialists_row(d) if _is_specialists(d) else _run_row(d) for d in run_dirs]
    if eval_file:
        for row, run_dir in zip(rows, run_dirs, strict=True):
            row.eval_rmse = eval_rmse(run_dir, eval_file)
    return rows


def _is_specialists(run_dir: str) -> bool:
    return Path(run_dir, "specialists.json").is_file()


def _run_row(run_dir: str) -> CompareRow:
    import pyarrow.parquet as pq

    path = Path(run_dir)
    if not (path / "summary.json").is_file():
        raise RunDirError(f"{run_dir}: no summary.json; give finished run folders")
    summary = json.loads((path / "summary.json").read_text())
    hist = pq.read_table(path / "history.parquet").to_pandas()
    hist = hist[hist["trial_id"] == summary["best_trial_id"]].sort_values("epoch")
    if hist.empty:
        raise RunDirError(f"{run_dir}: its best trial reported no epoch")
    best = hist.loc[hist["val_loss"].idxmin()]
    return CompareRow(
        name=summary.get("study", path.name),
        epochs=int(hist["epoch"].max()),
        train_loss=float(best["train_loss"]),
        val_loss=float(best["val_loss"]),
        val_rmse=float(best["val_rmse"]) if "val_rmse" in best else None,
        curve=(hist["epoch"].astype(int).tolist(), hist["val_loss"].astype(float).tolist()),
    )


def _specialists_row(run_dir: str) -> CompareRow:
    record = json.loads(Path(run_dir, "specialists.json").read_text())
    epochs = [g.get("best_epoch") or 0 for g in record["groups"].values()]
    return CompareRow(
        name=f"{Path(run_dir).name} ({len(record['groups'])} specialists)",
        epochs=max(epochs) if epochs else None,
        train_loss=None,
        val_loss=None,
        val_rmse=record["combined_val_rmse"],
    )


def eval_rmse(run_dir: str, eval_file: str) -> float:
    """RMSE (targets' units) of RUN_DIR's model on a Parquet file, over the labels present there."""
    import pyarrow.parquet as pq
    import yaml

    from tunepipe.predict import load_model
    from tunepipe.study import parse_study

    first = run_dir
    if _is_specialists(run_dir):
        first = next(iter(json.loads(Path(run_dir, "specialists.json").read_text())["groups"]))
        first = str(Path(run_dir, first))
    study = parse_study(yaml.safe_load(Path(first, "study.yaml").read_text()))
    model = load_model(run_dir)
    labels = model.labels if hasattr(model, "labels") else study.data.labels
    table = pq.read_table(eval_file)
    x = table.column(study.data.image_column).combine_chunks()
    x = np.asarray(x.flatten().to_numpy(zero_copy_only=False), np.float32).reshape(len(x), -1)
    y = np.column_stack([table.column(c).to_numpy(zero_copy_only=False) for c in labels])
    pred = np.concatenate([model.predict(x[i : i + 512]) for i in range(0, len(x), 512)])
    seen = np.isfinite(y) & np.isfinite(pred)
    return math.sqrt(float(((pred - y)[seen] ** 2).mean()))


def format_table(rows: list[CompareRow]) -> str:
    """The playbook's table, plus RMSE in pixels (and on the held-out file when given)."""
    extra = any(r.eval_rmse is not None for r in rows)
    head = ["net", "epochs", "train loss", "valid loss", "valid RMSE"] + (
        ["held-out RMSE"] if extra else []
    )
    lines = [head]
    for r in rows:
        cells = [r.name, _num(r.epochs), _num(r.train_loss), _num(r.val_loss), _num(r.val_rmse)]
        lines.append(cells + ([_num(r.eval_rmse)] if extra else []))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = [" | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    out.insert(1, "-|-".join("-" * w for w in widths))
    return "\n".join(out)


def _num(v: float | int | None) -> str:
    if v is None:
        return "-"
    return str(v) if isinstance(v, int) else f"{v:.6f}" if abs(v) < 0.1 else f"{v:.4f}"


def plot_val_curves(rows: list[CompareRow], path: str | Path) -> Path:
    """Every run's validation loss per epoch on one plot (log loss; epochs log when they span)."""
    from tunepipe.report.style import epoch_axis, new_figure, save, tidy

    fig = new_figure(7.5, 4.2)
    ax = fig.add_subplot()
    for row in rows:
        if row.curve:
            few = len(row.curve[0]) <= 30  # a run of one or two epochs is a point, not a line
            ax.plot(*row.curve, label=row.name, linewidth=1.2, marker="o" if few else None, ms=3)
    ax.set_yscale("log")
    ax.set_ylabel("validation loss", fontsize=8)
    epoch_axis(ax)
    tidy(ax)
    ax.legend(fontsize=7, frameon=False)
    return save(fig, Path(path))


def compare_report(
    run_dirs: list[str | Path], eval_file: str | Path | None, plot: str | Path | None
) -> str:
    """The table as text, and the curves' PNG (default: beside the first run folder)."""
    dirs = [str(d) for d in run_dirs]
    if len(dirs) == 1 and _is_specialists(dirs[0]):  # each group, then the combination
        groups = json.loads(Path(dirs[0], "specialists.json").read_text())["groups"]
        dirs = [str(Path(dirs[0], name)) for name in groups] + dirs
    rows = compare_runs(dirs, str(eval_file) if eval_file else None)
    path = Path(plot) if plot else Path(run_dirs[0]).parent / "compare_val_loss.png"
    plot_val_curves(rows, path)
    return f"{format_table(rows)}\n\nvalidation curves: {path}"
