"""Ray Jobs through tunepipe.engine.jobs against a real 3-node cluster (private netns, token on).

unshare -n sh -c 'ip link set lo up && pytest -m cluster tests/test_cluster_jobs.py'
"""

from __future__ import annotations

import time

import pytest
from conftest_cluster import local_cluster  # noqa: F401

from tunepipe.engine import jobs

pytestmark = pytest.mark.cluster

TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


def _wait(job_id: str, cluster, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        status = jobs.job_status(job_id, cluster.dashboard_url, cluster.token_path)
        if status in TERMINAL:
            return status
        time.sleep(0.5)
    return status


def test_trivial_job_succeeds_and_its_logs_come_back(local_cluster, tmp_path):  # noqa: F811
    (tmp_path / "hello.py").write_text("print('hi from', __file__.rsplit('/', 1)[-1])\n")
    job_id = jobs.submit_entrypoint(
        "python hello.py", local_cluster.dashboard_url, local_cluster.token_path, tmp_path
    )
    assert _wait(job_id, local_cluster) == "SUCCEEDED"
    (logs,) = jobs.job_logs(job_id, local_cluster.dashboard_url, local_cluster.token_path)
    assert "hi from hello.py" in logs
    followed = "".join(
        jobs.job_logs(job_id, local_cluster.dashboard_url, local_cluster.token_path, follow=True)
    )
    assert "hi from hello.py" in followed
    listed = jobs.list_jobs(local_cluster.dashboard_url, local_cluster.token_path)
    assert job_id in {j.submission_id for j in listed}


def test_stop_job_stops_a_running_job(local_cluster):  # noqa: F811
    url, token = local_cluster.dashboard_url, local_cluster.token_path
    job_id = jobs.submit_entrypoint("python -c 'import time; time.sleep(120)'", url, token)
    deadline = time.monotonic() + 30
    while jobs.job_status(job_id, url, token) == "PENDING" and time.monotonic() < deadline:
        time.sleep(0.3)
    assert jobs.stop_job(job_id, url, token)
    assert _wait(job_id, local_cluster) == "STOPPED"


def test_wrong_token_is_refused_without_echoing_it(local_cluster, tmp_path):  # noqa: F811
    from tunepipe.engine.auth import ensure_token

    wrong = ensure_token(tmp_path / "wrong")
    with pytest.raises(jobs.JobError) as refused:
        jobs.list_jobs(local_cluster.dashboard_url, wrong)
    assert wrong.read_text() not in str(refused.value)
    assert "refused the token" in str(refused.value)  # tunepipe's own words and hint
    assert "RAY_AUTH_MODE" not in str(refused.value) and "--token-file" in str(refused.value)


def test_submit_refuses_a_study_outside_the_working_dir(tmp_path):
    study = tmp_path / "study.yaml"
    study.write_text("name: x\n")
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(jobs.JobError, match="outside the working directory"):
        jobs.submit(study, "http://127.0.0.1:1", tmp_path / "token", tmp_path / "elsewhere")
