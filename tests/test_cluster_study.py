"""Studies on a real 3-node cluster: `tunepipe submit` + `tunepipe jobs`, and a worker node lost
midway (private netns, token on):

unshare -rn sh -c 'ip link set lo up && python -m pytest -m cluster tests/test_cluster_study.py'
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest
from conftest_cluster import local_cluster  # noqa: F401
from test_resume import (
    SLOW_CODE,
    cli,
    env,
    reported_epochs,
    resume_and_check,
    write_study,
)

pytestmark = pytest.mark.cluster

SEEN: dict[str, str] = {}  # the cluster's folder, for the leftover check after the module


@pytest.fixture(scope="module", autouse=True)
def _no_ray_process_left_behind():
    """Set up before the cluster, so this runs after it has stopped: nothing of it survives."""
    yield
    folder = SEEN.get("dir")
    assert folder
    left = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        if folder in " ".join(p.info["cmdline"] or []):
            left.append(p.info["pid"])
    assert not left, f"processes of cluster {folder} still alive: {left}"


def tp(cluster, *args: str) -> subprocess.CompletedProcess:
    """`tunepipe ARGS --address DASHBOARD --token-file TOKEN`, output captured."""
    full = cli(*args, "--address", cluster.dashboard_url, "--token-file", str(cluster.token_path))
    return subprocess.run(full, env=env(), capture_output=True, text=True, timeout=120)


def test_submitted_study_succeeds_with_a_local_runs_schema(local_cluster, tmp_path):  # noqa: F811
    SEEN["dir"] = str(local_cluster.dir)
    token = Path(local_cluster.token_path).read_text().strip()
    shutil.copytree(SLOW_CODE, tmp_path / "code")  # code_dir travels with the job
    study = write_study(tmp_path, trials=4, epochs=4, delay=0.0, code_dir="code")
    runs = tmp_path / "cluster-runs"
    submitted = tp(local_cluster, "submit", str(study), "--storage", str(runs))
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    outputs = [submitted.stdout + submitted.stderr]
    deadline, status = time.monotonic() + 180, ""
    while time.monotonic() < deadline and status not in {"SUCCEEDED", "FAILED", "STOPPED"}:
        time.sleep(2)
        out = tp(local_cluster, "jobs", "status", job_id)
        outputs.append(out.stdout + out.stderr)
        status = (out.stdout.split() or [""])[0]  # then the study's view (monitoring)
    logs = tp(local_cluster, "jobs", "logs", job_id)
    outputs.append(logs.stdout + logs.stderr)
    assert status == "SUCCEEDED", logs.stdout[-3000:]
    assert any(f"run folder: {runs}/slow" in o and "study slow: finished" in o for o in outputs)
    assert "best trial" in logs.stdout and "results:" in logs.stdout  # rich wraps long paths
    listed = tp(local_cluster, "jobs", "list")
    outputs.append(listed.stdout + listed.stderr)
    assert job_id in listed.stdout
    ray_list = subprocess.run(
        ["ray", "job", "list", "--address", local_cluster.dashboard_url],
        env={**os.environ, **local_cluster.driver_env()},
        capture_output=True,
        text=True,
        timeout=60,
    )
    outputs.append(ray_list.stdout + ray_list.stderr)
    assert job_id in ray_list.stdout
    # The dashboard's job list says which study each job is.
    assert "'tunepipe_study': 'slow'" in ray_list.stdout
    assert f"'tunepipe_run_dir': '{runs}/slow'" in ray_list.stdout
    # run.json names the folder the study was submitted from, not the head's temporary copy.
    recorded = json.loads((runs / "slow" / "run.json").read_text())
    assert recorded["study_dir"] == str(tmp_path) and recorded["job_working_dir"] != str(tmp_path)
    assert "Uploading package" not in submitted.stderr + submitted.stdout
    cluster_table = pq.read_table(runs / "slow" / "results.parquet")
    assert cluster_table.num_rows == 4
    local = subprocess.run(
        cli("run", str(study), "--storage", str(tmp_path / "local"), "--num-samples", "1"),
        env=env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert local.returncode == 0, local.stderr[-3000:]
    assert pq.read_table(tmp_path / "local" / "slow" / "results.parquet").schema.equals(
        cluster_table.schema
    )
    unknown = tp(local_cluster, "jobs", "status", "raysubmit_nosuchjob")
    assert unknown.returncode == 2 and "no such job" in unknown.stderr
    outputs.append(unknown.stdout + unknown.stderr)
    assert not [o for o in outputs if token in o]  # the token is never shown


def test_wrong_token_and_dead_address_exit_2(local_cluster, tmp_path):  # noqa: F811
    from tunepipe.engine.auth import ensure_token

    wrong = ensure_token(tmp_path / "wrong")

    def jobs_list(address: str) -> subprocess.CompletedProcess:
        full = cli("jobs", "list", "--address", address, "--token-file", str(wrong))
        return subprocess.run(full, env=env(), capture_output=True, text=True, timeout=60)

    refused = jobs_list(local_cluster.dashboard_url)
    assert refused.returncode == 2, refused.stderr
    assert "error:" in refused.stderr and wrong.read_text() not in refused.stderr
    said = " ".join(refused.stderr.split())
    assert "refused the token" in said and "--token-file" in said
    assert "get-auth-token" not in said and "RAY_AUTH_MODE" not in said  # Ray's advice, not ours
    gcs = jobs_list(local_cluster.address)  # the GCS address local_cluster.py prints first
    assert gcs.returncode == 2 and "not a dashboard address" in " ".join(gcs.stderr.split())
    dead = jobs_list("http://127.0.0.1:9")
    assert dead.returncode == 2 and "Cannot reach" in dead.stderr


def _rows(run: Path) -> dict[str, list[dict]]:
    out = {}
    for trial in sorted(p for p in run.iterdir() if p.is_dir() and p.name.startswith("tune_")):
        log = trial / "result.json"
        lines = log.read_text().splitlines() if log.exists() else []
        out[trial.name] = [json.loads(x) for x in lines if x.strip()]
    return out


def test_study_survives_a_lost_worker_node(local_cluster, tmp_path):  # noqa: F811
    SEEN["dir"] = str(local_cluster.dir)
    study = write_study(tmp_path, trials=4, epochs=6, delay=0.1)
    run = tmp_path / "runs" / "slow"
    driver = subprocess.Popen(
        cli("run", str(study), "--address", local_cluster.address),
        env={**env(), "TUNEPIPE_RAY_TOKEN_PATH": str(local_cluster.token_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # three trials, one per node, two epochs in
            assert driver.poll() is None, driver.communicate()[1][-3000:]
            if run.is_dir() and sum(len(r) >= 2 for r in _rows(run).values()) >= 3:
                break
            time.sleep(0.3)
        local_cluster.kill_node(1)
        out, err = driver.communicate(timeout=240)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 0, err[-3000:]
    rows = _rows(run)
    assert len(rows) == 4
    retried = {}
    for trial, seq in rows.items():
        epochs = [r["epoch"] for r in seq]
        assert epochs[-1] == 6, (trial, epochs)  # every trial reached its final result
        # A restart shows as iterations_since_restore back at 1 after the first report.
        for i, r in enumerate(seq[1:], 1):
            if r["iterations_since_restore"] == 1:
                last_before = max(epochs[:i])
                retried[trial] = (last_before, r["epoch"])
                # From the last checkpoint (every epoch): at most one epoch re-run, never from 1.
                assert r["epoch"] in (last_before, last_before + 1), (trial, epochs)
    assert retried, "no trial ran on the killed node"
    print("retried (last epoch before, first epoch after):", retried)
    results = pq.read_table(run / "results.parquet").to_pylist()
    assert [r["stop_reason"] for r in results] == ["completed"] * 4
    # A retried trial that then finished is `completed` in the progress line too, not `error`.
    assert sorted(re.findall(r"\] trial \S+ (\w+);", err)) == ["completed"] * 4, err[-3000:]


def test_jobs_stop_then_resume_keeps_every_epoch_once(local_cluster, tmp_path):  # noqa: F811
    SEEN["dir"] = str(local_cluster.dir)
    shutil.copytree(SLOW_CODE, tmp_path / "code")
    study = write_study(tmp_path, trials=4, epochs=6, delay=0.05, code_dir="code")
    runs = tmp_path / "cluster-runs"
    submitted = tp(local_cluster, "submit", str(study), "--storage", str(runs))
    assert submitted.returncode == 0, submitted.stderr
    job_id, run = submitted.stdout.strip(), runs / "slow"
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline:
        if run.is_dir() and sum(map(len, reported_epochs(run).values())) >= 6:
            break
        time.sleep(0.5)
    else:
        pytest.fail(tp(local_cluster, "jobs", "logs", job_id).stdout[-3000:])
    assert tp(local_cluster, "jobs", "stop", job_id).returncode == 0
    deadline, status = time.monotonic() + 120, ""
    while time.monotonic() < deadline and status not in {"STOPPED", "SUCCEEDED", "FAILED"}:
        time.sleep(1)
        status = (tp(local_cluster, "jobs", "status", job_id).stdout.split() or [""])[0]
    assert status == "STOPPED"  # the job's state, then the study's view (docs/monitoring.md)
    # Resumed here, from the folder the study was submitted from (run.json), on embedded Ray.
    resume_and_check(run, epochs=6, trials=4)
