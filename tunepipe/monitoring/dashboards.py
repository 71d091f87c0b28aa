"""The tunepipe study dashboard for Grafana, built as plain data from the metric catalogue.

No hand-maintained JSON: every panel's query is written from `names`, so renaming a metric
renames it here too. The dashboard selects its Prometheus through a `datasource` variable (as
Ray's own dashboards do), defaulting to the datasource `tunepipe grafana export` provisions, and
picks a study with the `study` variable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from tunepipe.monitoring import names

DATASOURCE_UID = "tunepipe-prometheus"  # stable: provisioning, push and panels agree on it
DATASOURCE_NAME = "Prometheus"  # Ray's dashboard looks its Grafana datasource up by this name
STUDY_DASHBOARD_UID = "tunepipe-study"
SCHEMA_VERSION = 39  # Grafana 10/11 dashboard JSON model
DS_REF = {"type": "prometheus", "uid": "${datasource}"}
STUDY = '{study=~"$study"}'


@dataclass(frozen=True)
class PanelSpec:
    title: str
    question: str  # what the panel answers (its description; docs/monitoring.md repeats it)
    expr: str
    legend: str
    kind: str = "timeseries"
    unit: str = "short"
    log_scale: bool = False


def study_panels() -> list[PanelSpec]:
    """The study dashboard's panels, top to bottom."""
    t = names.TRIAL_METRICS
    return [
        PanelSpec(
            "Validation loss per trial",
            "Which trials are learning, and which diverge or overfit?",
            f"{t['val_loss'].prom_name}{STUDY}",
            "{{trial}}",
            log_scale=True,
        ),
        PanelSpec(
            "Training loss per trial",
            "Is each trial still improving on its training data?",
            f"{t['train_loss'].prom_name}{STUDY}",
            "{{trial}}",
            log_scale=True,
        ),
        PanelSpec(
            "Learning rate per trial",
            "Which trials had their learning rate decayed on a plateau (P5)?",
            f"{t['lr'].prom_name}{STUDY}",
            "{{trial}}",
            log_scale=True,
        ),
        PanelSpec(
            "Epochs per trial",
            "How far has each trial got in its budget?",
            f"{t['epoch'].prom_name}{STUDY}",
            "{{trial}}",
        ),
        PanelSpec(
            "Trials by state",
            "How many trials run, wait, or have ended?",
            f"sum by (state) ({names.TRIALS.prom_name}{STUDY})",
            "{{state}}",
            kind="stat",
        ),
        PanelSpec(
            "Stops by reason",
            "Why did the ended trials stop (pruned, diverged, overfitting, plateau, ...)?",
            f"sum by (reason) ({names.STOPS.prom_name}{STUDY})",
            "{{reason}}",
            kind="bargauge",
        ),
        PanelSpec(
            "Best so far",
            "How good is the best trial so far, and is it still improving?",
            f"{names.BEST.prom_name}{STUDY}",
            "{{study}} {{metric}}",
        ),
        PanelSpec(
            "Throughput (epochs per second)",
            "Is the cluster busy training, or are trials waiting?",
            f"{names.EPOCHS_PER_SECOND.prom_name}{STUDY}",
            "{{study}}",
            unit="none",
        ),
    ]


def study_dashboard() -> dict[str, Any]:
    """The tunepipe study dashboard (Grafana's dashboard JSON model)."""
    panels = []
    for i, spec in enumerate(study_panels()):
        width = 12
        panels.append(_panel(i + 1, spec, x=(i % 2) * width, y=(i // 2) * 8, w=width))
    return {
        "uid": STUDY_DASHBOARD_UID,
        "title": "tunepipe study",
        "description": "A tunepipe study's trials: losses, learning rates, states, stop reasons.",
        "tags": ["tunepipe", "ray-tune"],
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": True,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "timezone": "browser",
        "templating": {"list": [_datasource_variable(), _study_variable()]},
        "annotations": {"list": []},
        "panels": panels,
    }


def _panel(panel_id: int, spec: PanelSpec, x: int, y: int, w: int) -> dict[str, Any]:
    custom: dict[str, Any] = {}
    if spec.log_scale:
        custom["scaleDistribution"] = {"type": "log", "log": 10}
    return {
        "id": panel_id,
        "type": spec.kind,
        "title": spec.title,
        "description": spec.question,
        "datasource": DS_REF,
        "gridPos": {"x": x, "y": y, "w": w, "h": 8},
        "targets": [
            {"refId": "A", "datasource": DS_REF, "expr": spec.expr, "legendFormat": spec.legend}
        ],
        "fieldConfig": {"defaults": {"unit": spec.unit, "custom": custom}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
    }


def _datasource_variable() -> dict[str, Any]:
    return {
        "name": "datasource",
        "label": "Prometheus",
        "type": "datasource",
        "query": "prometheus",
        "current": {"text": DATASOURCE_NAME, "value": DATASOURCE_UID},
        "hide": 0,
    }


def _study_variable() -> dict[str, Any]:
    query = f"label_values({names.TRIALS.prom_name}, study)"
    return {
        "name": "study",
        "label": "Study",
        "type": "query",
        "datasource": DS_REF,
        "definition": query,
        "query": {"query": query, "refId": "tunepipe-study-variable"},
        "refresh": 2,  # on time range change: a new study appears without a reload
        "includeAll": True,
        "multi": True,
        "sort": 1,
    }


def datasource_config(url: str) -> dict[str, Any]:
    """The Prometheus datasource every dashboard resolves to (Grafana's datasource model)."""
    return {
        "uid": DATASOURCE_UID,
        "name": DATASOURCE_NAME,
        "type": "prometheus",
        "access": "proxy",
        "url": url,
        "isDefault": True,
        "jsonData": {"httpMethod": "POST"},
    }


def panel_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """Every (panel title, PromQL expression) of a dashboard, rows' nested panels included."""
    found = []
    for panel in _all_panels(dashboard):
        for target in panel.get("targets", []):
            if target.get("expr"):
                found.append((panel.get("title", ""), target["expr"]))
    return found


def datasource_problems(dashboard: dict[str, Any], datasource: dict[str, Any]) -> list[str]:
    """Datasource references in `dashboard` that would not resolve to `datasource`.

    A reference resolves when it names the datasource's uid or name, Grafana's built-in
    annotation source, or a `datasource` variable whose type is the datasource's type.
    """
    variables = {
        v["name"]: v.get("query")
        for v in dashboard.get("templating", {}).get("list", [])
        if v.get("type") == "datasource"
    }
    problems = []
    for where, ref in _datasource_refs(dashboard):
        uid = ref.get("uid") if isinstance(ref, dict) else ref
        if uid in (None, "", datasource["uid"], datasource["name"], "-- Grafana --", "grafana"):
            continue
        var = uid[2:-1] if uid.startswith("${") else uid[1:] if uid.startswith("$") else None
        if var is not None and variables.get(var) == datasource["type"]:
            continue
        problems.append(f"{where}: datasource {ref!r} does not resolve to {datasource['uid']}")
    return problems


def _datasource_refs(dashboard: dict[str, Any]) -> list[tuple[str, Any]]:
    refs = []
    for panel in _all_panels(dashboard):
        title = f"panel {panel.get('id')} ({panel.get('title', '')})"
        if "datasource" in panel:
            refs.append((title, panel["datasource"]))
        refs += [(title, t["datasource"]) for t in panel.get("targets", []) if "datasource" in t]
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "query" and "datasource" in var:
            refs.append((f"variable {var['name']}", var["datasource"]))
    return refs


def _all_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    panels = []
    for panel in dashboard.get("panels", []):
        panels.append(panel)
        panels += panel.get("panels", [])  # collapsed rows hold their panels
    return panels


def substitute_variables(expr: str, values: dict[str, str]) -> str:
    """`expr` with Grafana's variables replaced as Grafana would: ranges (`[$__rate_interval]`,
    `[$interval]`) by 1m, named variables by `values` (a regex matching all when not given)."""
    expr = re.sub(r"\[\$\{?\w+\}?\]", "[1m]", expr)
    return re.sub(r"\$\{?(\w+)\}?", lambda m: values.get(m.group(1), ".*"), expr)
