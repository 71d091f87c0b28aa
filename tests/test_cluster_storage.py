"""Pure checks behind cluster studies: the multi-host storage rule and the job's runtime_env."""

from __future__ import annotations

import pytest

from tunepipe.engine.jobs import JobError, job_runtime_env
from tunepipe.errors import StorageError
from tunepipe.storage import check_storage_reaches_every_node, locate


def test_local_storage_on_several_hosts_is_refused_with_the_fix(tmp_path):
    loc = locate(str(tmp_path), "s")
    with pytest.raises(StorageError, match="--shared-storage") as refused:
        check_storage_reaches_every_node(loc, {"10.0.0.1", "10.0.0.2"})
    assert "s3://" in str(refused.value)


def test_one_host_a_uri_or_a_declared_shared_mount_pass(tmp_path):
    loc = locate(str(tmp_path), "s")
    check_storage_reaches_every_node(loc, {"127.0.0.1"})
    check_storage_reaches_every_node(loc, {"10.0.0.1", "10.0.0.2"}, shared=True)
    mem = locate("mock://bucket/runs", "s")
    check_storage_reaches_every_node(mem, {"10.0.0.1", "10.0.0.2"})


def test_job_env_puts_code_dir_on_every_workers_path(tmp_path):
    (tmp_path / "code").mkdir()
    env = job_runtime_env(tmp_path, tmp_path, "code")["env_vars"]
    assert env["PYTHONPATH"] == ".:code:${PYTHONPATH}"
    assert env["TUNEPIPE_RAY_TOKEN_PATH"] == "${RAY_AUTH_TOKEN_PATH}"
    with pytest.raises(JobError, match="outside the job's working directory"):
        job_runtime_env(tmp_path / "code", tmp_path / "code", "..")
