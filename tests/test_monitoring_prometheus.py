"""A real study on the embedded Ray, scraped by a real Prometheus (Debian's `prometheus`).

One `tunepipe run` (a fresh interpreter, as a user runs it) with Ray's metrics report interval
shortened; Prometheus finds Ray's metrics ports through the service-discovery file Ray writes in
its session folder. While the study runs, every query of the tunepipe dashboard must return a
series and `tunepipe status` must advance; afterwards each trial's last scraped val_loss must be
one of its rows in history.parquet. The same run checks --grafana/--prometheus reach Ray's
dashboard (its Grafana and Prometheus health endpoints), with a loopback stand-in for Grafana,
and that `tunepipe jobs status` shows the study's view for a job whose metadata names the run
folder (the embedded Ray's dashboard serves the Jobs API).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import REPO, study_dict, tunepipe_cli

from tunepipe.monitoring.dashboards import panel_queries, study_dashboard, substitute_variables

pytestmark = [
    pytest.mark.ray,
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="Debian's prometheus package"),
]
STUDY = "mon"
DEADLINE_S = 420  # the whole study; under contention it is far slower than on a quiet machine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_prometheus(folder: Path, sd_file: Path, port: int) -> subprocess.Popen:
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": "ray",
                "file_sd_configs": [{"files": [str(sd_file)], "refresh_interval": "1s"}],
            }
        ],
    }
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = open(folder / "prometheus.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [
            "prometheus",
            f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _wait_ready(port: int, prom: subprocess.Popen, timeout: float = 120) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        assert prom.poll() is None, "prometheus exited; see prometheus.log"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=5):
                return
        except OSError:
            time.sleep(0.5)
    pytest.fail("prometheus did not become ready")


def _query(port: int, expr: str) -> list[dict]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.load(r)
    assert body["status"] == "success", body
    return body["data"]["result"]


def _get_json(url: str, headers: dict) -> dict:
    req = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(req, timeout=20) as r:
        return json.load(r)


def _epochs_done(status_out: str) -> int | None:
    found = re.search(r"epochs: (\d+) done", status_out)
    return int(found.group(1)) if found else None


@pytest.fixture
def slow_study(tmp_path) -> Path:
    # Big enough batches of work that a trial lives for several scrapes even on a quiet machine.
    study = study_dict(
        name=STUDY,
        model={"kind": "mlp", "hidden_width": 256, "depth": 3},
        train={"batch_size": 8},
        search_space={"lr": {"type": "loguniform", "low": 1e-3, "high": 3e-2}},
        scheduler={"kind": "fifo", "max_epochs": 10, "grace_period": 10},
        num_samples=2,
        storage=str(tmp_path / "runs"),
    )
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


@pytest.fixture
def no_shared_ray():
    """This test's `tunepipe run` starts a Ray of its own, with its dashboard and job agent, as a
    user's does. The suite's shared in-process Ray (conftest.ray_session) would hold the same
    default agent port in this one network namespace, and the job agent would never come up
    ("No available agent to submit job"). So the shared Ray is stopped for this test and started
    again after it, as conftest starts it."""
    import ray

    from tunepipe.engine.session import init_ray

    shared = ray.is_initialized()
    if shared:
        ray.shutdown()
    yield
    if shared:
        init_ray(None, num_cpus=2, dashboard=False)


def test_study_metrics_reach_prometheus(slow_study, tmp_path, httpserver, no_shared_ray):
    ray_tmp = Path(tempfile.mkdtemp(prefix="tpm", dir="/tmp"))  # short: Ray's socket paths
    (ray_tmp / "ray").mkdir()
    # Ray keeps a link to the session's discovery file in its temp folder (Ray >= 2.55).
    sd_file = ray_tmp / "ray" / "prom_metrics_service_discovery.json"
    prom_port = _free_port()
    prom = _start_prometheus(tmp_path, sd_file, prom_port)
    _wait_ready(prom_port, prom)
    httpserver.expect_request("/api/health").respond_with_json({"database": "ok", "version": "11"})
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "RAY_TMPDIR": str(ray_tmp),
        "RAY_metrics_report_interval_ms": "500",
    }
    stderr = open(tmp_path / "run.err", "w")  # noqa: SIM115 - closed below
    cmd = [sys.executable, "-m", "tunepipe", "run", str(slow_study)]
    cmd += ["--grafana", httpserver.url_for("").rstrip("/")]
    cmd += ["--prometheus", f"http://127.0.0.1:{prom_port}"]
    run = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)
    run_dir = tmp_path / "runs" / STUDY
    queries = [
        (title, substitute_variables(expr, {"study": STUDY}))
        for title, expr in panel_queries(study_dashboard())
    ]
    answered: dict[str, int] = {}
    seen_epochs: list[int] = []
    health: dict[str, Any] = {}
    job_view = None
    try:
        t0 = time.monotonic()
        while run.poll() is None and time.monotonic() - t0 < DEADLINE_S:
            time.sleep(1.0)
            for title, expr in queries:
                if title not in answered and (found := _query(prom_port, expr)):
                    answered[title] = len(found)
            if (run_dir / "status.json").exists() and len(seen_epochs) < 4:
                out = tunepipe_cli("status", str(run_dir))
                assert out.returncode == 0, out.stderr
                if "running" in out.stdout and (n := _epochs_done(out.stdout)):
                    if not seen_epochs or n > seen_epochs[-1]:
                        seen_epochs.append(n)
            if not health:
                health = _ray_dashboard_health(tmp_path / "run.err")
            elif job_view is None and (run_dir / "status.json").exists():
                job_view = _jobs_status_view(health["url"], run_dir)
        out, _ = run.communicate(timeout=max(1, DEADLINE_S - (time.monotonic() - t0)))
        assert run.returncode == 0, (tmp_path / "run.err").read_text()[-3000:]
        _check_last_values_are_history(prom_port, run_dir)
        # beside Ray's own dashboards, for the Grafana Ray's session grafana.ini provisions
        boards = ray_tmp / "ray" / "session_latest" / "metrics" / "grafana" / "dashboards"
        assert (boards / "tunepipe-study.json").is_file() and len(list(boards.iterdir())) > 1
    finally:
        if run.poll() is None:
            run.send_signal(signal.SIGINT)
            run.wait(60)
        stderr.close()
        prom.terminate()  # our own Prometheus, by its pid
        prom.wait(30)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    missing = [t for t, _ in queries if t not in answered]
    assert not missing, f"no series for: {missing}; answered {answered}"
    assert len(seen_epochs) >= 2, f"`tunepipe status` did not advance: {seen_epochs}"
    assert health["grafana"]["data"]["grafanaHost"] == httpserver.url_for("").rstrip("/")
    assert health["prometheus"]["result"] is True, health
    assert "Ray dashboard: http://" in (tmp_path / "run.err").read_text()
    assert job_view is not None and job_view.returncode == 0, job_view
    first, *view = job_view.stdout.splitlines()
    assert first in {"PENDING", "RUNNING", "SUCCEEDED"}
    assert view[0] == f"run folder: {run_dir}" and view[1].startswith(f"study {STUDY}: ")
    final = tunepipe_cli("status", str(run_dir))
    assert final.returncode == 0 and "finished" in final.stdout, final.stdout


def _jobs_status_view(url: str, run_dir: Path) -> subprocess.CompletedProcess:
    """`tunepipe jobs status` of a job whose metadata names the run folder, as `submit` records
    it: the embedded Ray's dashboard serves the Jobs API too."""
    from tunepipe.engine import jobs
    from tunepipe.engine.session import token_path
    from tunepipe.monitoring.jobs_view import RUN_DIR_KEY

    job = jobs.submit_entrypoint("true", url, token_path(), metadata={RUN_DIR_KEY: str(run_dir)})
    return tunepipe_cli("jobs", "status", job, "--address", url, "--token-file", str(token_path()))


def _ray_dashboard_health(err_file: Path) -> dict[str, Any]:
    """The Ray dashboard's own view of its Grafana and Prometheus, once it prints its address."""
    from tunepipe.engine.auth import auth_headers
    from tunepipe.engine.session import token_path

    found = re.search(r"Ray dashboard: (http://\S+) ", err_file.read_text())
    if not found:
        return {}
    headers = auth_headers(token_path())
    url = found.group(1)
    return {
        "url": url,
        "grafana": _get_json(f"{url}/api/grafana_health", headers),
        "prometheus": _get_json(f"{url}/api/prometheus_health", headers),
    }


def _check_last_values_are_history(prom_port: int, run_dir: Path) -> None:
    history = pq.read_table(run_dir / "history.parquet").to_pandas()
    trials = sorted(history["trial_id"].unique())
    assert len(trials) == 2
    for trial in trials:
        expr = f'last_over_time(ray_tunepipe_trial_val_loss{{study="{STUDY}",trial="{trial}"}}[1h])'
        (series,) = _query(prom_port, expr)
        last = np.float32(float(series["value"][1]))
        rows = history.loc[history["trial_id"] == trial, "val_loss"].to_numpy(np.float32)
        assert last in rows, f"trial {trial}: last scraped {last} not among {rows}"
