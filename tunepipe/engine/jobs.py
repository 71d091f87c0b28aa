"""Ray Jobs on a token-guarded cluster: submit a study, list, status, logs, stop.

Plain functions over Ray's `JobSubmissionClient`, one call each, for `tunepipe submit` and
`tunepipe jobs ...`. Every request carries the bearer token read from `token_path` (see
`auth.py`); the token is never printed, logged or put into an error message.
"""

from __future__ import annotations

import asyncio
import os
import queue
import shlex
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tunepipe.engine.auth import auth_headers


class JobError(RuntimeError):
    """A Jobs API request failed: cluster unreachable, token refused, or job unknown."""


def _client(address: str, token_path: str | os.PathLike[str]) -> Any:
    """A JobSubmissionClient for `address` (http://host:port of the dashboard) with the token.

    Ray adds its own header only when this process runs in token mode; an explicit
    `authorization` header works from any process, and Ray leaves it alone.
    """
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address, headers=auth_headers(token_path))
    except (ConnectionError, RuntimeError, AuthenticationError) as e:
        raise JobError(
            f"Cannot reach the Ray Jobs API at {address}: {e}. Check the address is the "
            "dashboard's http://HOST:PORT and the token file is the cluster's."
        ) from e


def submit_entrypoint(
    entrypoint: str,
    address: str,
    token_path: str | os.PathLike[str],
    working_dir: str | os.PathLike[str] | None = None,
    runtime_env: dict[str, Any] | None = None,
) -> str:
    """Submit a shell command as a Ray job; `working_dir` is uploaded and becomes its cwd."""
    env = dict(runtime_env or {})
    if working_dir is not None:
        env["working_dir"] = str(working_dir)
    client = _client(address, token_path)
    return client.submit_job(entrypoint=entrypoint, runtime_env=env or None)


def submit(
    study_path: str | os.PathLike[str],
    address: str,
    token_path: str | os.PathLike[str],
    working_dir: str | os.PathLike[str] | None = None,
) -> str:
    """Submit `tunepipe run STUDY` as a Ray job and return its submission id.

    The working directory (the study's folder when None) is uploaded with the job, so the study
    file and anything it names by relative path travel with it. It must contain the study.
    """
    study = Path(study_path).resolve()
    folder = Path(working_dir).resolve() if working_dir is not None else study.parent
    if not study.is_file():
        raise JobError(f"Study file {study} does not exist.")
    if not study.is_relative_to(folder):
        raise JobError(
            f"Study file {study} is outside the working directory {folder}, which is all the job "
            "sees. Pass a working_dir that contains the study."
        )
    entrypoint = f"tunepipe run {shlex.quote(str(study.relative_to(folder)))}"
    return submit_entrypoint(entrypoint, address, token_path, working_dir=folder)


def list_jobs(address: str, token_path: str | os.PathLike[str]) -> list[Any]:
    """Every job the cluster knows, as Ray's `JobDetails` (submission_id, status, entrypoint...)."""
    return _client(address, token_path).list_jobs()


def job_status(job_id: str, address: str, token_path: str | os.PathLike[str]) -> str:
    """The job's status name: PENDING, RUNNING, STOPPED, SUCCEEDED or FAILED."""
    return str(_client(address, token_path).get_job_status(job_id).value)


def stop_job(job_id: str, address: str, token_path: str | os.PathLike[str]) -> bool:
    """Ask the cluster to stop the job; False if it had already finished."""
    return bool(_client(address, token_path).stop_job(job_id))


def job_logs(
    job_id: str, address: str, token_path: str | os.PathLike[str], follow: bool = False
) -> Iterator[str]:
    """The job's output: all of it so far, or with `follow` chunks as they come until it ends."""
    client = _client(address, token_path)
    if not follow:
        yield client.get_job_logs(job_id)
        return
    yield from _iterate_async(client.tail_job_logs(job_id))


def _iterate_async(agen: Any) -> Iterator[str]:
    """Drive an async iterator on its own thread and event loop, so callers stay synchronous
    (and work inside a running loop, e.g. Jupyter)."""
    chunks: queue.Queue[tuple[str, Any]] = queue.Queue()

    async def pump() -> None:
        try:
            async for chunk in agen:
                chunks.put(("chunk", chunk))
        except Exception as e:  # handed to the consumer thread
            chunks.put(("error", e))
        finally:
            chunks.put(("end", None))

    thread = threading.Thread(target=lambda: asyncio.run(pump()), daemon=True)
    thread.start()
    while True:
        kind, value = chunks.get()
        if kind == "chunk":
            yield value
        elif kind == "error":
            raise JobError(f"Following the job's logs failed: {value}") from value
        else:
            return
