"""`tunepipe grafana push` against a loopback Grafana that checks Grafana's documented API."""

from __future__ import annotations

import re

import pytest
from conftest import tunepipe_cli
from fake_grafana import FakeGrafana

from tunepipe.monitoring import grafana
from tunepipe.monitoring.dashboards import DATASOURCE_UID, STUDY_DASHBOARD_UID
from tunepipe.monitoring.grafana import GrafanaError, push


@pytest.fixture
def fake(httpserver) -> FakeGrafana:
    server = FakeGrafana()
    httpserver.expect_request(re.compile(".*")).respond_with_handler(server.handle)
    return server


def _url(httpserver) -> str:
    return httpserver.url_for("").rstrip("/")


def test_push_twice_leaves_one_copy_of_each(fake, httpserver):
    first = push(_url(httpserver), token=fake.token, prometheus_url="http://prom:9090")
    assert fake.unexpected == []
    boards = {b["uid"] for _, b in grafana.dashboards()}
    assert set(fake.dashboards) == boards and len(boards) == 4
    assert set(fake.folders) == {"tunepipe", "ray"}
    assert fake.dashboards[STUDY_DASHBOARD_UID]["folderUid"] == "tunepipe"
    assert fake.dashboards["rayDefaultDashboard"]["folderUid"] == "ray"
    assert list(fake.datasources) == [DATASOURCE_UID]
    assert fake.datasources[DATASOURCE_UID]["url"] == "http://prom:9090"
    assert sum("created" in line for line in first) == 7  # datasource, 2 folders, 4 dashboards
    writes = len(fake.writes)
    second = push(_url(httpserver), token=fake.token, prometheus_url="http://prom:9090")
    assert len(fake.writes) == writes, "a second push changed something"
    assert all(line.endswith("unchanged") for line in second), second
    assert len(fake.dashboards) == 4 and len(fake.datasources) == 1


def test_push_updates_what_changed(fake, httpserver, monkeypatch):
    push(_url(httpserver), token=fake.token)
    before = fake.dashboards[STUDY_DASHBOARD_UID]["dashboard"]["version"]
    original = grafana.study_dashboard
    monkeypatch.setattr(grafana, "study_dashboard", lambda: {**original(), "refresh": "30s"})
    done = push(_url(httpserver), token=fake.token, prometheus_url="http://other:9090")
    assert f"dashboard {STUDY_DASHBOARD_UID}: updated" in done
    assert f"datasource {DATASOURCE_UID}: updated" in done
    stored = fake.dashboards[STUDY_DASHBOARD_UID]["dashboard"]
    assert stored["refresh"] == "30s" and stored["version"] == before + 1
    assert fake.datasources[DATASOURCE_UID]["url"] == "http://other:9090"
    assert "PUT /api/datasources/uid/tunepipe-prometheus" in fake.writes


def test_basic_auth_works(fake, httpserver):
    push(_url(httpserver), user="admin", password="secret")
    assert len(fake.dashboards) == 4


def test_refused_credentials_say_what_to_do(fake, httpserver):
    with pytest.raises(GrafanaError, match="401.*credentials were refused"):
        push(_url(httpserver), token="wrong")
    assert fake.dashboards == {} and fake.writes == []


def test_a_datasource_name_taken_by_another_uid_is_a_409(fake, httpserver):
    fake.datasources["other"] = {"uid": "other", "name": "Prometheus", "type": "prometheus"}
    with pytest.raises(GrafanaError, match="409.*same name"):
        push(_url(httpserver), token=fake.token)


def test_the_fake_refuses_a_dashboard_upload_without_overwrite(fake, httpserver):
    # The conflict push avoids by always sending overwrite: the fake must answer it as Grafana.
    from grafana_client import GrafanaApi
    from grafana_client.client import GrafanaClientError

    api = GrafanaApi.from_url(_url(httpserver), credential=fake.token)
    board = {"uid": "x", "title": "X"}
    api.dashboard.update_dashboard({"dashboard": board, "overwrite": False})
    with pytest.raises(GrafanaClientError) as e:
        api.dashboard.update_dashboard({"dashboard": board, "overwrite": False})
    assert e.value.status_code == 412


def test_cli_push(fake, httpserver):
    ok = tunepipe_cli("grafana", "push", "--url", _url(httpserver), "--token", fake.token)
    assert ok.returncode == 0, ok.stderr
    assert "dashboard tunepipe-study: created" in ok.stdout
    bad = tunepipe_cli("grafana", "push", "--url", _url(httpserver), "--token", "nope")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "credentials were refused" in bad.stderr
    assert "nope" not in bad.stderr + bad.stdout  # a token is never echoed back
