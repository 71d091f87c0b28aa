"""The study report: one self-contained report.html (inline CSS, PNGs as data URIs, no JS).

`write_report(run_dir)` reads the run folder (docs/run-dir.md), writes the plots as `report_*.png`
next to it and the page as `report.html`. The page opens from a mail attachment or an air-gapped
cluster just the same, since it references nothing outside itself. docs/report.md explains how to
read each section.
"""

from __future__ import annotations

import base64
import math
from collections import Counter
from collections.abc import Callable
from html import escape
from pathlib import Path
from typing import Any

from tunepipe.playbook.output import LR_PLOT, OVERFIT_PLOT
from tunepipe.report import plots
from tunepipe.report.citations import link_rules, rules_section
from tunepipe.report.css import CSS
from tunepipe.report.rundir import (
    RunData,
    best_trial,
    finite_or_none,
    load_run,
    ranked_trials,
    trial_row,
)
from tunepipe.report.style import reason_color

SECTION_IDS: tuple[str, ...] = (
    "summary",
    "best-config",
    "curves",
    "stop-reasons",
    "lr-history",
    "hyperparameters",
    "sanity",
    "diagnostics",
    "trials",
    "playbook",
)
"""Every section's `id`, in page order; stable so links and tests can point at them."""

NAV_LABELS = {
    "summary": "Summary", "best-config": "Best config", "curves": "Loss curves",
    "stop-reasons": "Stop reasons", "lr-history": "LR history",
    "hyperparameters": "Hyperparameters", "sanity": "Sanity", "diagnostics": "Diagnostics",
    "trials": "All trials", "playbook": "Rules",
}  # fmt: skip
STATUS_COLORS = {"pass": "#009E73", "warn": "#E69F00", "fail": "#D55E00"}


def write_report(run_dir: str | Path, top_k: int = 5) -> Path:
    """Write `report.html` and `report_*.png` into `run_dir` and return the HTML's path.

    `top_k` trials (best first by the study's metric and mode) get loss curves and LR histories.
    Raises FileNotFoundError when `run_dir` is not a run folder.
    """
    from tunepipe.report.painter import current

    painter = current()  # a second process draws half the pictures (tunepipe.report.painter)
    far = painter.run(draw_pictures, run_dir, PAINTER_SHARE, top_k) if painter else None
    run = load_run(run_dir)
    ranked, top, best = _ranking(run, top_k)
    here = [name for name in PICTURES if far is None or name not in PAINTER_SHARE]
    pics = {name: PICTURES[name](run, top, best) for name in here}
    if far is not None:
        pics.update(far())
    sections = [
        _summary(run, best),
        _best_config(run, best),
        _curves(pics["curves"]),
        _stop_reasons(run, pics["stop_reasons"]),
        _lr_history(pics["lr_history"]),
        _hyperparameters(pics["hyperparameters"]),
        _sanity(run),
        _diagnostics(pics["diagnostics"], _shown(best, top)[1]),
        _trials(run, ranked, best),
    ]
    body = "\n".join(sections)
    body = link_rules(body) + "\n" + rules_section(body)
    out = run.run_dir / "report.html"
    out.write_text(_page(run, body), encoding="utf-8")
    return out


def _ranking(run: RunData, top_k: int) -> tuple[list[str], list[str], str | None]:
    """(every trial best first, the `top_k` whose curves are drawn, the best trial or None)."""
    ranked = ranked_trials(run)
    best = best_trial(run)
    top = ([best] if best else []) + [t for t in ranked if t != best]
    return ranked, top[: max(1, top_k)], best


def _shown(best: str | None, top: list[str]) -> tuple[str | None, str]:
    """The trial the diagnostics show and how to name it: without a best trial (all diverged)
    the first in the ranking still shows how it broke."""
    shown = best or (top[0] if top else None)
    who = f"the best trial {shown}" if best else f"trial {shown} (no trial has a finite metric)"
    return shown, who


# Every picture of the report: name -> draw(run, top, best) -> its PNG, or None (nothing to draw).
PICTURES: dict[str, Callable[[RunData, list[str], str | None], Path | None]] = {
    "curves": lambda run, top, best: plots.plot_curves(run, top, _png(run, "curves")),
    "stop_reasons": lambda run, top, best: plots.plot_stop_reasons(
        _stop_counts(run), _png(run, "stop_reasons")
    ),
    "lr_history": lambda run, top, best: plots.plot_lr_history(run, top, _png(run, "lr_history")),
    "hyperparameters": lambda run, top, best: plots.plot_hyperparameters(
        run, best, _png(run, "hyperparameters")
    ),
    "diagnostics": lambda run, top, best: _draw_diagnostics(run, *_shown(best, top)),
}


def _draw_diagnostics(run: RunData, shown: str | None, who: str) -> Path | None:
    return plots.plot_diagnostics(
        run, shown, _png(run, "diagnostics"), title=f"Diagnostics of {who}"
    )


# What a painter draws while this process draws the rest: the split that balances the two on
# digits (drawn alone: curves 0.50 s, hyperparameters 0.50, diagnostics 0.37, lr_history 0.14,
# stop_reasons 0.06). With curves and hyperparameters there, this process waited about 0.45 s;
# the report phase fell from 1.30 to 1.17 s (medians of 3 warm runs each, seed 4).
PAINTER_SHARE = ("curves", "diagnostics")


def draw_pictures(run_dir: str | Path, names: tuple[str, ...], top_k: int) -> dict[str, Any]:
    """Draw the named pictures of the run folder (in a painter process, from the files)."""
    run = load_run(run_dir)
    _, top, best = _ranking(run, top_k)
    return {name: PICTURES[name](run, top, best) for name in names}


# ---- formatting helpers ---------------------------------------------------------------------


def fmt(value: Any) -> str:
    """A cell value as escaped text: 4 significant digits, NaN/inf spelled out, null as a dash."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        return f"{value:.4g}"
    return escape(str(value))


def fmt_seconds(seconds: Any) -> str:
    """Wall time as "1 h 02 min", "3 min 12 s" or "12.3 s"."""
    s = finite_or_none(seconds)
    if s is None:
        return "—"
    if s >= 3600:
        return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"
    if s >= 60:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{s:.1f} s"


def _badge(reason: Any) -> str:
    color = reason_color(reason)
    return f'<span class="badge" style="background:{color}">{fmt(reason)}</span>'


def _table(header: list[str], rows: list[list[str]], cls: str = "") -> str:
    """An HTML table from already-escaped cells."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "\n".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _img(path: Path | None, alt: str, missing: str) -> str:
    """The PNG embedded as a base64 data URI, or a note saying why there is no picture."""
    if path is None:
        return f'<p class="note">{escape(missing)}</p>'
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{escape(alt)}">'
        f"<figcaption>{escape(path.name)}</figcaption></figure>"
    )


def _section(sid: str, title: str, body: str, lead: str = "") -> str:
    lead_html = f'<p class="lead">{lead}</p>' if lead else ""
    return f'<section id="{sid}"><h2>{escape(title)}</h2>{lead_html}{body}</section>'


def _png(run: RunData, name: str) -> Path:
    return run.run_dir / f"report_{name}.png"


# ---- sections ---------------------------------------------------------------------------------


def _summary(run: RunData, best: str | None) -> str:
    s = run.summary
    best_value = s.get(f"best_{run.metric}", trial_row(run, best).get(run.metric) if best else None)
    n_trials = s.get("n_trials", len(run.trial_ids))
    cards = [
        ("study", fmt(s.get("study", run.run_dir.name))),
        ("metric", f"{fmt(run.metric)} ({'lower' if run.mode == 'min' else 'higher'} is better)"),
        (f"best {fmt(run.metric)}", fmt(best_value)),
        ("best trial", fmt(best) if best else "none"),
        ("trials", fmt(n_trials)),
        ("wall time", fmt_seconds(s.get("wall_seconds"))),
    ]
    html = (
        '<div class="cards">'
        + "".join(
            f'<div class="card"><div class="k">{k}</div><div class="v">{v}</div></div>'
            for k, v in cards
        )
        + "</div>"
    )
    test = s.get("test")
    if isinstance(test, dict) and test:
        html += "<h3>Held-out test set (best model, measured once — playbook P8)</h3>"
        html += _table(["metric", "value"], [[fmt(k), fmt(v)] for k, v in test.items()], "narrow")
    if finite_or_none(best_value) is None and run.trial_ids:
        html += (
            '<p class="note warn">No trial reached a finite value of the metric: every trial '
            "diverged or failed. Start with a lower learning rate (playbook P5, L1).</p>"
        )
    return _section("summary", "Summary", html)


def _best_config(run: RunData, best: str | None) -> str:
    config = run.summary.get("best_config")
    if not isinstance(config, dict) or not config:
        row = trial_row(run, best) if best else {}
        config = {k.removeprefix("config."): v for k, v in row.items() if k.startswith("config.")}
    if not config:
        why = "no trial reached a finite metric value" if run.trial_ids else "no trials"
        return _section("best-config", "Best configuration", f'<p class="note">None: {why}.</p>')
    rows = [[f"<code>{fmt(k)}</code>", fmt(v)] for k, v in config.items()]
    return _section(
        "best-config", "Best configuration", _table(["hyperparameter", "value"], rows, "narrow")
    )


def _curves(path: Path | None) -> str:
    lead = (
        "Training and validation loss per epoch for the best trial and the next best, "
        "dotted line at the best epoch. A validation loss that turns up while training loss "
        "keeps falling is overfitting (playbook P6, E1)."
    )
    return _section(
        "curves", "Loss curves", _img(path, "loss curves", "No loss history was recorded."), lead
    )


def _stop_counts(run: RunData) -> dict[str, int]:
    counts = run.summary.get("stop_reasons")
    if isinstance(counts, dict) and counts:
        return {str(k): int(v) for k, v in counts.items() if finite_or_none(v) is not None}
    return dict(Counter(str(r) for r in run.results.get("stop_reason", [])))


def _stop_reasons(run: RunData, path: Path | None) -> str:
    body = _img(path, "stop reasons", "No stop reasons recorded.")
    reasons = run.results.get("stop_reason") or [None] * len(run.trial_ids)
    epochs = run.results.get("epochs") or [None] * len(run.trial_ids)
    rows = [
        [fmt(t), _badge(r), fmt(e)] for t, r, e in zip(run.trial_ids, reasons, epochs, strict=False)
    ]
    if rows:
        body += _table(["trial", "stop reason", "epochs run"], rows, "narrow")
    return _section(
        "stop-reasons",
        "Why trials stopped",
        body,
        "Each trial ends for one documented reason (docs/stop-reasons.md).",
    )


def _lr_history(path: Path | None) -> str:
    lead = "Learning rate per epoch; each ▼ is a decay on a plateau (playbook L1, P5)."
    return _section(
        "lr-history",
        "Learning-rate history",
        _img(path, "learning rate history", "No learning rate was reported."),
        lead,
    )


def _hyperparameters(path: Path | None) -> str:
    lead = (
        "Each sampled hyperparameter against the trial's best metric, coloured by stop "
        "reason. Tune the learning rate first: it matters most (playbook L1)."
    )
    return _section(
        "hyperparameters",
        "Hyperparameters",
        _img(path, "hyperparameters", "No config.* columns in results.parquet."),
        lead,
    )


def _sanity(run: RunData) -> str:
    title = "Sanity stage"
    if run.sanity is None:
        return _section("sanity", title, '<p class="note">Sanity stage not run.</p>')
    body = f'<p class="note warn">{escape(run.sanity.error)}</p>' if run.sanity.error else ""
    rows = [
        [_status(c.get("status")), f"<code>{fmt(c.get('name'))}</code>", fmt(c.get("detail"))]
        for c in run.sanity.checks
    ]
    no_checks = '<p class="note">No checks recorded.</p>'
    body += _table(["status", "check", "detail"], rows) if rows else no_checks
    # The stage drew its LR range test and overfit curve already (beside the search): embedded
    # as drawn, not drawn twice. A run folder without them (an older run) gets the test drawn.
    drawn = run.run_dir / LR_PLOT
    path = drawn if drawn.exists() else plots.plot_lr_range(run.sanity, _png(run, "lr_range"))
    body += "<h3>Learning-rate range test</h3>" + _img(
        path, "LR range test", "The LR range test did not run."
    )
    overfit = run.run_dir / OVERFIT_PLOT
    if overfit.exists():
        body += "<h3>Overfitting a tiny subset</h3>" + _img(overfit, "overfit curve", "")
    lead = (
        "Checks before tuning: a loss that starts where it should, a tiny subset the net can "
        "overfit (P1), and the LR range test (P5, L1)."
    )
    return _section("sanity", title, body, lead)


def _status(status: Any) -> str:
    color = STATUS_COLORS.get(str(status), "#9CA3AF")
    return f'<span class="badge" style="background:{color}">{fmt(status)}</span>'


def _diagnostics(path: Path | None, who: str) -> str:
    lead = (
        "Gradient norm, update/weight ratio (healthy near 1e-3, shaded: L1), top softmax "
        "probability (near uniform early, towards 1 as a classifier learns: P4) and the "
        f"fraction of dead ReLUs, for {escape(who)}."
    )
    missing = (
        "The trainable reported no diagnostics (grad_norm, update_ratio, top_prob, dead_relu)."
    )
    return _section("diagnostics", "Training diagnostics", _img(path, "diagnostics", missing), lead)


def _trials(run: RunData, ranked: list[str], best: str | None) -> str:
    cols = list(run.results)
    if not cols:
        return _section("trials", "All trials", '<p class="note">No results.parquet.</p>')
    rows_html = []
    for tid in ranked:
        row = trial_row(run, tid)
        cells = "".join(
            f"<td>{_badge(row[c]) if c == 'stop_reason' else fmt(row[c])}</td>" for c in cols
        )
        cls = ' class="best"' if tid == best else ""
        rows_html.append(f"<tr{cls}>{cells}</tr>")
    head = "".join(f"<th>{escape(c.removeprefix('config.'))}</th>" for c in cols)
    table = (
        f'<div class="scroll"><table class="trials"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows_html)}</tbody></table></div>"
    )
    return _section(
        "trials",
        "All trials",
        table,
        f"Best first by {escape(run.metric)}; the best trial is highlighted.",
    )


def _page(run: RunData, body: str) -> str:
    study = fmt(run.summary.get("study", run.run_dir.name))
    version = " · ".join(
        f"{escape(name)} {fmt(run.versions[key])}"
        for key, name in (("tunepipe", "tunepipe"), ("ray", "Ray"), ("torch", "PyTorch"))
        if run.versions.get(key)
    )
    nav = " ".join(f'<a href="#{s}">{label}</a>' for s, label in NAV_LABELS.items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tunepipe report — {study}</title>
<style>{CSS}</style></head>
<body><header><div class="brand">tunepipe</div><h1>{study}</h1>
<div class="sub">study report{" · " + version if version else ""}</div><nav>{nav}</nav></header>
<main>{body}</main>
<footer>Generated by tunepipe from {escape(run.run_dir.name)}/ · rules cited by id are explained
in the last section (docs/playbook.md)</footer></body></html>
"""
