"""Turning Ray's ResultGrid into results.parquet, history.parquet and summary.json."""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from tunepipe.config import StudyConfig
from tunepipe.engine.lineage import merge_logs
from tunepipe_schedulers.reasons import STOP_REASONS

SKIP_COLUMNS = {
    "trial_id",
    "timestamp",
    "time_this_iter_s",
    "time_total_s",
    "pid",
    "time_since_restore",
    "iterations_since_restore",
    "timesteps_since_restore",
    "timesteps_total",
    "episodes_total",
    "checkpoint_dir_name",
    "should_checkpoint",
    "done",
    "date",
    "hostname",
    "node_ip",
    "experiment_tag",
    "stop_reason",
    "training_iteration",
}


@dataclass
class TrialRecord:
    trial_id: str
    config: dict[str, Any]
    history: dict[str, list[float]]  # metric -> values per report (epoch order)
    stop_reason: str
    checkpoint: str | None

    def best_index(self, metric: str, mode: str) -> int | None:
        values = np.asarray(self.history.get(metric, []), dtype=float)
        finite = np.isfinite(values)
        if not finite.any():
            return None
        masked = np.where(finite, values, np.inf if mode == "min" else -np.inf)
        return int(np.argmin(masked) if mode == "min" else np.argmax(masked))


def trial_records(grid: Any, study: StudyConfig, decisions: dict[str, dict]) -> list[TrialRecord]:
    """One TrialRecord per trial of a finished (or restored) Tuner."""
    records = []
    for result in grid:
        rows = _reported_rows(result)
        history = _history_from_rows(rows)
        trial_id = _trial_id(result)
        reported = next(
            (r["stop_reason"] for r in rows[::-1] if isinstance(r.get("stop_reason"), str)), None
        )
        steps = history.get("epoch", history.get("training_iteration", []))
        ended = len(steps) >= study.scheduler.max_epochs
        reason = decide_reason(reported, result.error, decisions.get(trial_id), ended)
        best = _best_checkpoint(result, study)
        records.append(
            TrialRecord(
                trial_id=trial_id,
                config=_sampled_config(result, best),
                history=history,
                stop_reason=reason,
                checkpoint=best,
            )
        )
    return records


def decide_reason(
    reported: str | None, error: Any, decision: dict | None, ran_to_end: bool = False
) -> str:
    """The trial's one stop reason, for every output (the progress line included).

    The trial's own word (a trainable that saw its loss diverge) first, then the scheduler's
    decision (a rule stop is the reason even on the last epoch, where the budget also ran out),
    then an error Ray recorded, else the trainable ran to its end: completed. Two decisions can
    go stale when a later session runs the trial on: an error Ray retried, and a trial a study's
    time budget left unfinished that a resume then trained to its end.
    """
    if reported in STOP_REASONS:
        return reported
    said = (decision or {}).get("reason")
    stale = (said == "error" and not error) or (said == "unfinished" and ran_to_end)
    if said in STOP_REASONS and not stale:
        return said
    return "error" if error else "completed"


def final_decisions(records: list[TrialRecord], decisions: dict[str, dict]) -> dict[str, dict]:
    """decisions.json as written at the end: every trial, with the reason every output shows."""
    out = {tid: dict(d) for tid, d in decisions.items()}
    for r in records:
        d = out.setdefault(r.trial_id, {})
        if d.get("reason") != r.stop_reason:
            d.update(reason=r.stop_reason, detail=_END_DETAIL.get(r.stop_reason, "said the trial"))
            d.setdefault("best_epoch", None)
    return out


_END_DETAIL = {
    "completed": "ran its epoch budget, or its trainable returned",
    "error": "the trainable raised; its traceback is in the trial's folder",
}


def results_table(records: list[TrialRecord], study: StudyConfig) -> pa.Table:
    """results.parquet: one row per trial (columns documented in docs/run-dir.md)."""
    keys = list(study.search_space) or sorted({k for r in records for k in r.config})
    metric, mode = study.metric, study.mode
    cols: dict[str, list] = {"trial_id": [r.trial_id for r in records]}
    for k in keys:
        cols[f"config.{k}"] = [r.config.get(k) for r in records]
    names = dict.fromkeys((metric, "val_loss", "val_acc", "val_rmse", "train_loss", "best_epoch"))
    at_best: dict[str, list] = {name: [] for name in names}
    for r in records:
        i = r.best_index(metric, mode)
        for name in at_best:
            at_best[name].append(_epoch_at(r, i) if name == "best_epoch" else _at(r, name, i))
    keep = (metric, "best_epoch")  # documented columns, even when empty
    cols.update({k: v for k, v in at_best.items() if any(x is not None for x in v) or k in keep})
    cols["epochs"] = [
        len(r.history.get("epoch", r.history.get("training_iteration", []))) for r in records
    ]
    cols["stop_reason"] = [r.stop_reason for r in records]
    cols["checkpoint"] = [r.checkpoint for r in records]
    cols["lr_decays"] = [int(max(r.history.get("lr_decays") or [0])) for r in records]
    return pa.table({k: _column(v) for k, v in cols.items()})


def history_table(records: list[TrialRecord]) -> pa.Table:
    """history.parquet: one row per report of every trial; metrics a trial lacks are null."""
    names = sorted({k for r in records for k in r.history} - {"epoch", "training_iteration"})
    ids, epochs, values = [], [], {n: [] for n in names}
    for r in records:
        n = max((len(v) for v in r.history.values()), default=0)
        ep = r.history.get("epoch") or r.history.get("training_iteration") or list(range(1, n + 1))
        ids += [r.trial_id] * n
        epochs += [int(e) for e in ep[:n]]
        for name in names:
            col = r.history.get(name, [])
            values[name] += [float(v) if v is not None else None for v in col] + [None] * (
                n - len(col)
            )
    return pa.table(
        {
            "trial_id": pa.array(ids, pa.string()),
            "epoch": pa.array(epochs, pa.int64()),
            **{n: pa.array(values[n], pa.float64()) for n in names},
        }
    )


def summary(records: list[TrialRecord], study: StudyConfig, wall_seconds: float) -> dict[str, Any]:
    """summary.json's content (docs/run-dir.md)."""
    metric, mode = study.metric, study.mode
    scored = [
        (r.history[metric][i], r) for r in records if (i := r.best_index(metric, mode)) is not None
    ]
    out: dict[str, Any] = {
        "study": study.name,
        "metric": metric,
        "mode": mode,
        "n_trials": len(records),
        "stop_reasons": dict(Counter(r.stop_reason for r in records)),
        "wall_seconds": round(wall_seconds, 2),
        "tunepipe_version": _version(),
    }
    if scored:
        value, best = (min if mode == "min" else max)(scored, key=lambda t: t[0])
        out.update(
            {
                "best_trial_id": best.trial_id,
                "best_config": best.config,
                f"best_{metric}": float(value),
            }
        )
        i = best.best_index(metric, mode)
        out["best_epoch"] = _epoch_at(best, i)
        for name in ("val_loss", "val_acc", "val_rmse"):
            if name in best.history:
                out[f"best_{name}"] = _at(best, name, i)
    else:
        out.update({"best_trial_id": None, "best_config": None, f"best_{metric}": None})
    return out


def _reported_rows(result: Any) -> list[dict[str, Any]]:
    """Every epoch of a trial's final line of training once, in order (tunepipe.engine.lineage).

    Neither of Ray's logs is whole by itself: `Result.metrics_dataframe` and result.json miss
    the report on which a trial was paused (an LR decay), and progress.csv keeps only the keys of
    the first report (so it lacks `stop_reason`). The union of both files is complete, but for
    an epoch whose checkpoint was saved and whose report an interrupt lost: the trial's own
    record in its newest checkpoint has that one.
    """
    logs = [_read_log(result, "progress.csv"), _read_log(result, "result.json")]
    return merge_logs(logs, _own_record(result))


def _own_record(result: Any) -> list[dict[str, Any]]:
    """The per-epoch record tunepipe's trainable keeps in its newest checkpoint ([] if none)."""
    from tunepipe.train.checkpoint import META_FILE, RECORD_KEY, newest_in

    newest = newest_in(result.path, result.filesystem)
    if newest is None:
        return []
    with result.filesystem.open_input_stream(f"{newest}/{META_FILE}") as f:
        return list(json.loads(f.read()).get(RECORD_KEY, []))


def _read_log(result: Any, name: str) -> list[dict[str, Any]]:
    try:
        with result.filesystem.open_input_stream(f"{result.path}/{name}") as f:
            data = f.read()
    except FileNotFoundError:  # a trial that never reported
        return []
    if name.endswith(".csv"):
        import pyarrow.csv as pacsv

        # A resumed trial's first report can lack a key its earlier ones had; Ray then appends
        # rows of another width under the old header. Those rows are skipped here: result.json,
        # read beside it, holds every report whole.
        skip = pacsv.ParseOptions(invalid_row_handler=lambda row: "skip")
        table = pacsv.read_csv(pa.BufferReader(data), parse_options=skip) if data.strip() else None
        return table.to_pylist() if table is not None else []
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]


def _history_from_rows(rows: list[dict[str, Any]]) -> dict[str, list[float]]:
    names = {
        k
        for r in rows
        for k, v in r.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    names -= SKIP_COLUMNS - {"training_iteration"}
    return {n: [_num(r.get(n)) for r in rows] for n in sorted(names)}


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _sampled_config(result: Any, checkpoint: str | None) -> dict[str, Any]:
    """The config the trial was sampled with. Ray's result.config is the config it ended with,
    which a plateau decay changed; tunepipe's checkpoints keep the original as initial_config."""
    config = dict(result.config or {})
    if checkpoint is not None:
        try:
            with result.filesystem.open_input_stream(f"{checkpoint}/meta.json") as f:
                config.update(json.loads(f.read()).get("initial_config", {}))
        except FileNotFoundError:  # an own trainable's checkpoint: no tunepipe meta in it
            pass
    return config


def _trial_id(result: Any) -> str:
    tid = (result.metrics or {}).get("trial_id")
    if tid:
        return str(tid)
    return str(result.path).rstrip("/").rsplit("/", 1)[-1]


def _best_checkpoint(result: Any, study: StudyConfig) -> str | None:
    """The trial's best weights: those tunepipe's trainable kept apart (best/), else the best of
    the checkpoints Tune kept (an own trainable's, PBT's), else its last."""
    from tunepipe.train.checkpoint import best_in

    kept = best_in(result.path, result.filesystem) if result.path else None
    if kept is not None:
        return kept
    pairs = [(c, m) for c, m in (result.best_checkpoints or []) if _finite(m.get(study.metric))]
    if not pairs:
        return result.checkpoint.path if result.checkpoint is not None else None
    pick = min if study.mode == "min" else max
    return pick(pairs, key=lambda p: p[1][study.metric])[0].path


def _at(r: TrialRecord, name: str, i: int | None) -> Any:
    values = r.history.get(name)
    if i is None or not values or i >= len(values):
        return None
    v = values[i]
    return int(v) if name == "epoch" else v


def _epoch_at(r: TrialRecord, i: int | None) -> int | None:
    """The epoch of report i: the trainable's `epoch`, else Ray's training_iteration (own
    trainables report once per iteration)."""
    value = _at(r, "epoch", i)
    if value is None:
        value = _at(r, "training_iteration", i)
    return int(value) if value is not None else None


def _version() -> str:
    from tunepipe import __version__

    return __version__


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _column(values: list) -> pa.Array:
    sample = [v for v in values if v is not None]
    if (
        sample
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in sample)
        and any(isinstance(v, float) for v in sample)
    ):
        return pa.array([float(v) if v is not None else None for v in values], pa.float64())
    if sample and not all(type(v) is type(sample[0]) for v in sample):
        return pa.array([str(v) if v is not None else None for v in values], pa.string())
    return pa.array(values)
