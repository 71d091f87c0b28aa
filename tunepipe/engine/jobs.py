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
from tunepipe.engine.quiet import quiet_ray
from tunepipe.errors import TunepipeError

DEFAULT_ADDRESS = "http://127.0.0.1:8265"
# Set in a submitted job's environment: the folder the study was submitted from, recorded in
# run.json so that `resume` finds the study's code and data (the job's own working folder is a
# temporary copy on the head that Ray deletes).
SUBMITTED_FROM = "TUNEPIPE_SUBMITTED_FROM"
TOKEN_REFUSED = (
    "the cluster at {address} refused the token in {token}; pass the cluster's token file "
    "with --token-file (a local cluster prints it at start) or TUNEPIPE_RAY_TOKEN_PATH"
)


class JobError(TunepipeError, RuntimeError):
    """A Jobs API request failed: cluster unreachable, token refused, or job unknown (exit 2)."""


def default_address() -> str:
    """The dashboard to talk to: TUNEPIPE_ADDRESS, else RAY_ADDRESS when it is an http(s) URL."""
    for name in ("TUNEPIPE_ADDRESS", "RAY_ADDRESS"):
        value = os.environ.get(name, "")
        if value.startswith(("http://", "https://")):
            return value
    return DEFAULT_ADDRESS


def _refused(e: BaseException) -> bool:
    """A 401/403 or Ray's AuthenticationError: the cluster answered, and refused the token."""
    from ray.exceptions import AuthenticationError

    text = str(e)
    return isinstance(e, AuthenticationError) or "401" in text or "403" in text


def _request(what: str, address: str, call: Any, token_path: Any = "the token file") -> Any:
    """Run one client call; Ray's RuntimeErrors (404 unknown job, 401/403) become JobErrors."""
    from ray.exceptions import AuthenticationError

    try:
        return call()
    except (ConnectionError, RuntimeError, AuthenticationError) as e:
        if isinstance(e, JobError):
            raise
        text = str(e)
        if _refused(e):  # Ray's advice (auth modes, ray get-auth-token) is beside the point
            refused = TOKEN_REFUSED.format(address=address, token=token_path)
            raise JobError(f"{what}: {refused}") from None
        if "404" in text or "does not exist" in text:
            hint = "no such job on this cluster; `tunepipe jobs list` shows the known ones"
        else:
            hint = "check the address is the dashboard's http://HOST:PORT"
        raise JobError(f"{what} at {address} failed: {text.strip()[:300]} ({hint})") from None


def _client(address: str, token_path: str | os.PathLike[str]) -> Any:
    """A JobSubmissionClient for `address` (http://host:port of the dashboard) with the token.

    Ray adds its own header only when this process runs in token mode; an explicit
    `authorization` header works from any process, and Ray leaves it alone.
    """
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    if not address.startswith(("http://", "https://")):
        raise JobError(
            f"{address} is not a dashboard address: the Jobs API needs the dashboard's "
            "http://HOST:PORT (e.g. http://127.0.0.1:8265; `local_cluster.py start` prints it "
            "as `dashboard:`), not the GCS address HOST:PORT that `ray start` prints first"
        )
    quiet_ray()  # Ray's INFO lines about uploading the working folder
    try:
        return JobSubmissionClient(address, headers=auth_headers(token_path))
    except (ConnectionError, RuntimeError, AuthenticationError) as e:
        if _refused(e):
            raise JobError(TOKEN_REFUSED.format(address=address, token=token_path)) from None
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
    metadata: dict[str, str] | None = None,
) -> str:
    """Submit a shell command as a Ray job; `working_dir` is uploaded and becomes its cwd.
    `metadata` is shown with the job in the Ray dashboard's job list."""
    env = dict(runtime_env or {})
    if working_dir is not None:
        env["working_dir"] = str(working_dir)
    client = _client(address, token_path)
    return _request(
        "Submitting the job",
        address,
        lambda: client.submit_job(
            entrypoint=entrypoint, runtime_env=env or None, metadata=metadata
        ),
        token_path,
    )


def submit(
    study_path: str | os.PathLike[str],
    address: str,
    token_path: str | os.PathLike[str],
    working_dir: str | os.PathLike[str] | None = None,
    run_args: list[str] = (),
    sets: list[str] = (),
) -> str:
    """Submit `tunepipe run STUDY` as a Ray job and return its submission id.

    The working directory (the study's folder when None) is uploaded with the job, so the study
    file and anything it names by relative path travel with it. It must contain the study, and
    the study's `code_dir` when it names one. `run_args` go to `tunepipe run` (e.g. --storage);
    `sets` are `--set KEY=VALUE` overrides, checked here and applied again by the job's run.
    """
    from tunepipe.study import load_study

    study = Path(study_path).resolve()
    folder = Path(working_dir).resolve() if working_dir is not None else study.parent
    if not study.is_file():
        raise JobError(f"Study file {study} does not exist.")
    if not study.is_relative_to(folder):
        raise JobError(
            f"Study file {study} is outside the working directory {folder}, which is all the job "
            "sees. Pass a working_dir that contains the study."
        )
    cfg = load_study(study, sets)  # a broken study fails here, not minutes later on the cluster
    run_args = [*run_args, *(a for s in sets for a in ("--set", s))]
    runtime_env = job_runtime_env(folder, study.parent, cfg.code_dir)
    runtime_env["env_vars"][SUBMITTED_FROM] = str(study.parent)
    entrypoint = " ".join(
        ["tunepipe", "run", shlex.quote(str(study.relative_to(folder)))]
        + [shlex.quote(a) for a in run_args]
    )
    from tunepipe.monitoring.jobs_view import job_metadata

    storage = run_args[run_args.index("--storage") + 1] if "--storage" in run_args else None
    metadata = {
        "tunepipe_study": cfg.name,
        "tunepipe_run_dir": f"{storage or cfg.storage}/{cfg.name}",
        **job_metadata(cfg, list(run_args)),  # where `jobs status` finds the run folder
    }
    return submit_entrypoint(
        entrypoint,
        address,
        token_path,
        working_dir=folder,
        runtime_env=runtime_env,
        metadata=metadata,
    )


def job_runtime_env(folder: Path, study_dir: Path, code_dir: str | None) -> dict[str, Any]:
    """The job's runtime_env besides its working_dir: the user's code on every worker's path.

    Every Ray worker of the job starts in its own unpacked copy of the working directory, so a
    PYTHONPATH relative to it names the code on each node, wherever the copy landed.
    """
    entries = ["."]
    if code_dir:
        code = (study_dir / code_dir).resolve()
        if not code.is_relative_to(folder):
            raise JobError(
                f"code_dir {code} is outside the job's working directory {folder}, which is all "
                "the job uploads. Move the code below the study's folder, or pass --working-dir "
                "a folder holding both."
            )
        entries.append(str(code.relative_to(folder)) or ".")
    # ${PYTHONPATH}: Ray expands it to the node's own value, which must survive (Ray's update_envs).
    entries.append("${PYTHONPATH}")
    return {
        "env_vars": {
            "PYTHONPATH": os.pathsep.join(dict.fromkeys(entries)),
            # The job joins the cluster with the token of the node it runs on, not with whatever
            # TUNEPIPE_RAY_TOKEN_PATH the submitting shell happened to pass to `ray start`.
            "TUNEPIPE_RAY_TOKEN_PATH": "${RAY_AUTH_TOKEN_PATH}",
        }
    }


def list_jobs(address: str, token_path: str | os.PathLike[str]) -> list[Any]:
    """Every job the cluster knows, as Ray's `JobDetails` (submission_id, status, entrypoint...)."""
    client = _client(address, token_path)
    return _request("Listing jobs", address, client.list_jobs, token_path)


def job_status(job_id: str, address: str, token_path: str | os.PathLike[str]) -> str:
    """The job's status name: PENDING, RUNNING, STOPPED, SUCCEEDED or FAILED."""
    client = _client(address, token_path)
    status = _request(f"Job {job_id}", address, lambda: client.get_job_status(job_id), token_path)
    return str(status.value)


def job_info(job_id: str, address: str, token_path: str | os.PathLike[str]) -> Any:
    """Ray's JobDetails of the job: status, entrypoint, metadata, times."""
    client = _client(address, token_path)
    return _request(f"Job {job_id}", address, lambda: client.get_job_info(job_id))


def stop_job(job_id: str, address: str, token_path: str | os.PathLike[str]) -> bool:
    """Ask the cluster to stop the job; False if it had already finished."""
    client = _client(address, token_path)
    stop = lambda: client.stop_job(job_id)  # noqa: E731
    return bool(_request(f"Stopping job {job_id}", address, stop, token_path))


def job_logs(
    job_id: str, address: str, token_path: str | os.PathLike[str], follow: bool = False
) -> Iterator[str]:
    """The job's output: all of it so far, or with `follow` chunks as they come until it ends."""
    client = _client(address, token_path)
    if not follow:
        yield _request(f"Logs of job {job_id}", address, lambda: client.get_job_logs(job_id))
        return
    _request(f"Job {job_id}", address, lambda: client.get_job_status(job_id))  # unknown: say so
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
