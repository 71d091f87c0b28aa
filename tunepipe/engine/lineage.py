"""One report per epoch of a trial's final line of training, from logs that hold more and less.

A trial's logs (Ray's result.json and progress.csv, appended by the driver) can hold reports from
training that a later restore threw away, and can miss a report whose checkpoint Ray kept: a
driver interrupted between persisting a checkpoint and logging its result restores that
checkpoint, so the epoch is never reported again. tunepipe's trainable writes its own record (every
epoch's metrics up to that point) into each checkpoint; that record fills such gaps. Pure: plain
dicts in, plain dicts out.
"""

from __future__ import annotations

from typing import Any

SINCE_RESTORE = "iterations_since_restore"  # Ray resets it to 0 whenever a trial is restored


def step_key(rows: list[dict[str, Any]]) -> str:
    """`epoch` when the trainable reports it (tunepipe's does), else Ray's `training_iteration`."""
    return "epoch" if any(_int(r.get("epoch")) is not None for r in rows) else "training_iteration"


def final_lineage(rows: list[dict[str, Any]], key: str) -> dict[int, dict[str, Any]]:
    """The reports of the last line of training, one per step, from one log in append order.

    A report that starts a new segment (a restore: `iterations_since_restore` went back, or the
    step did not advance) drops every earlier report after the point it was restored from, so an
    epoch trained twice appears once (the re-trained report) and an abandoned future is gone.
    """
    kept: dict[int, dict[str, Any]] = {}
    prev_step, prev_since = None, None
    for row in rows:
        step = _int(row.get(key))
        if step is None:
            continue
        since = _int(row.get(SINCE_RESTORE))
        restarted = prev_step is not None and (
            step <= prev_step
            or (since is not None and prev_since is not None and since < prev_since)
        )
        if restarted:
            cut = step - since if since is not None and 0 <= step - since < step else step - 1
            kept = {s: r for s, r in kept.items() if s <= cut}
        kept[step] = row
        prev_step, prev_since = step, since
    return kept


def merge_logs(
    logs: list[list[dict[str, Any]]], record: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """One row per step, in step order: each log's final lineage merged (later logs add keys),
    then the steps no log kept filled from the trial's own record (its newest checkpoint's)."""
    key = step_key([r for log in logs for r in log] + list(record or []))
    merged: dict[int, dict[str, Any]] = {}
    for log in logs:
        for step, row in final_lineage(log, key).items():
            merged.setdefault(step, {}).update({k: v for k, v in row.items() if v is not None})
    for row in record or []:
        step = _int(row.get(key))
        if step is not None and step not in merged:
            merged[step] = dict(row)
    return [merged[s] for s in sorted(merged)]


def _int(v: Any) -> int | None:
    if isinstance(v, bool) or v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return int(f) if f == f and f == int(f) else None
