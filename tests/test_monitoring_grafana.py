"""Grafana dashboards generated from code: export files, ConfigMaps, queries and references."""

from __future__ import annotations

import json
import re

import promql_parser
import pytest
import yaml
from conftest import tunepipe_cli

from tunepipe.monitoring import names
from tunepipe.monitoring.dashboards import (
    STUDY_DASHBOARD_UID,
    datasource_problems,
    panel_queries,
    study_dashboard,
    substitute_variables,
)
from tunepipe.monitoring.grafana import GrafanaError, export


def _panel_ids(board: dict) -> list[int]:
    ids = []
    for panel in board["panels"]:
        ids.append(panel["id"])
        ids += [p["id"] for p in panel.get("panels", [])]
    return ids


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("grafana")
    return out, export(out, prometheus_url="http://prom.example:9090")


def test_export_writes_provisioning_that_resolves(exported):
    out, files = exported
    sources = yaml.safe_load((out / "provisioning/datasources/tunepipe.yaml").read_text())
    (source,) = sources["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prom.example:9090"
    providers = yaml.safe_load((out / "provisioning/dashboards/tunepipe.yaml").read_text())
    paths = {p["folder"]: p["options"]["path"] for p in providers["providers"]}
    assert set(paths) == {"tunepipe", "Ray"}
    boards = [json.loads(f.read_text()) for f in files if f.suffix == ".json"]
    assert {b["uid"] for b in boards} >= {STUDY_DASHBOARD_UID, "rayDefaultDashboard"}
    for f in (f for f in files if f.suffix == ".json"):  # each under its provider's folder
        assert any(str(f).startswith(p) for p in paths.values())
    for board in boards:
        assert isinstance(board["schemaVersion"], int), board["uid"]
        ids = _panel_ids(board)
        assert len(ids) == len(set(ids)), f"{board['uid']}: duplicate panel ids"
        assert datasource_problems(board, source) == [], board["uid"]


def test_every_panel_query_parses_as_promql(exported):
    out, files = exported
    boards = [json.loads(f.read_text()) for f in files if f.suffix == ".json"]
    queries = [(b["uid"], t, q) for b in boards for t, q in panel_queries(b)]
    assert len(queries) > 50  # Ray's dashboards are in there too
    for uid, title, expr in queries:
        try:
            promql_parser.parse(substitute_variables(expr, {"study": "digits"}))
        except ValueError as e:
            pytest.fail(f"{uid} / {title}: {expr!r} does not parse: {e}")


def test_study_dashboard_queries_every_metric():
    queried = " ".join(q for _, q in panel_queries(study_dashboard()))
    exported = {m.prom_name for m in names.ALL_METRICS} - {names.EPOCHS_DONE.prom_name}
    assert {n for n in exported if n in queried} == exported


def test_a_broken_reference_is_reported():
    board = study_dashboard()
    board["panels"][0]["datasource"] = {"type": "prometheus", "uid": "someone-else"}
    source = {"uid": "tunepipe-prometheus", "name": "Prometheus", "type": "prometheus"}
    (problem,) = datasource_problems(board, source)
    assert "panel 1" in problem and "someone-else" in problem


def test_export_is_stable(exported, tmp_path):
    out, files = exported
    again = export(tmp_path, prometheus_url="http://prom.example:9090")
    assert [f.relative_to(tmp_path) for f in again] == [f.relative_to(out) for f in files]
    for a, b in zip(again, files, strict=True):
        if a.suffix == ".json":
            assert a.read_text() == b.read_text()


def test_configmaps_follow_the_sidecar_convention(tmp_path):
    files = export(tmp_path, configmap=True, namespace="monitoring")
    docs = [yaml.safe_load(f.read_text()) for f in files]
    boards = [d for d in docs if d["metadata"]["labels"].get("grafana_dashboard") == "1"]
    sources = [d for d in docs if d["metadata"]["labels"].get("grafana_datasource") == "1"]
    assert len(boards) == 4 and len(sources) == 1
    for doc in docs:
        assert doc["kind"] == "ConfigMap" and doc["metadata"]["namespace"] == "monitoring"
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"])
    (study,) = [b for b in boards if "tunepipe-study" in b["metadata"]["name"]]
    (text,) = study["data"].values()
    assert json.loads(text) == study_dashboard()
    assert study["metadata"]["annotations"]["grafana_folder"] == "tunepipe"


def test_namespace_without_configmap_is_an_error(tmp_path):
    with pytest.raises(GrafanaError, match="--configmap"):
        export(tmp_path, namespace="x")


def test_cli_export(tmp_path):
    result = tunepipe_cli("grafana", "export", str(tmp_path / "g"), "--configmap")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.split()) == 5 and (tmp_path / "g/tunepipe-datasource.yaml").exists()
    bad = tunepipe_cli("grafana", "export", str(tmp_path / "h"), "--namespace", "x")
    assert bad.returncode == 2 and "error: " in bad.stderr and "Traceback" not in bad.stderr


def test_docs_name_every_metric_and_panel():
    from conftest import REPO

    from tunepipe.monitoring.dashboards import study_panels

    docs = (REPO / "docs" / "monitoring.md").read_text()
    for metric in names.ALL_METRICS:
        row = next((line for line in docs.splitlines() if f"`{metric.prom_name}`" in line), "")
        assert all(f"`{label}`" in row for label in metric.labels), metric.prom_name
    for panel in study_panels():
        assert f"| {panel.title} | {panel.question} | `{panel.expr}` |" in docs, panel.title
