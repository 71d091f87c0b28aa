"""`tunepipe submit` and `tunepipe jobs …`: studies as Ray jobs on a cluster (Jobs API)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tunepipe.cli_options import SetOpt, SharedStorage, StudyArg

jobs_app = typer.Typer(
    no_args_is_help=True, help="Ray jobs on a cluster: list, status, logs, stop (Jobs API)."
)

DashboardOpt = Annotated[
    str | None,
    typer.Option(
        "--address",
        help="the cluster's dashboard, http://HOST:8265 "
        "(default: TUNEPIPE_ADDRESS, RAY_ADDRESS, http://127.0.0.1:8265)",
        show_default=False,
    ),
]
TokenOpt = Annotated[
    Path | None,
    typer.Option(
        "--token-file",
        help="the cluster's 0600 token file (default: TUNEPIPE_RAY_TOKEN_PATH, "
        "RAY_AUTH_TOKEN_PATH, ~/.tunepipe/ray_auth_token)",
        show_default=False,
    ),
]
JobArg = Annotated[str, typer.Argument(help="the job's submission id", show_default=False)]


def _cluster(address: str | None, token_file: Path | None) -> tuple[str, Path]:
    from tunepipe.engine.jobs import default_address
    from tunepipe.engine.session import token_path

    return address or default_address(), (token_file or token_path()).expanduser()


def submit(
    study: StudyArg,
    address: DashboardOpt = None,
    token_file: TokenOpt = None,
    storage: Annotated[
        str | None,
        typer.Option(help="run folder storage as the cluster sees it (a URI or shared path)"),
    ] = None,
    working_dir: Annotated[
        Path | None, typer.Option(help="folder uploaded with the job (default: the study's)")
    ] = None,
    shared_storage: SharedStorage = False,
    set_: SetOpt = None,
) -> None:
    """Submit `tunepipe run STUDY` to a Ray cluster as a job; prints the job id."""
    from tunepipe.engine import jobs

    url, token = _cluster(address, token_file)
    args = (["--storage", storage] if storage else []) + (
        ["--shared-storage"] if shared_storage else []
    )
    typer.echo(
        jobs.submit(study, url, token, working_dir=working_dir, run_args=args, sets=set_ or [])
    )
    from tunepipe.monitoring.ray_dashboard import login_hint

    typer.echo(login_hint(url, token), err=True)


@jobs_app.command("list")
def jobs_list(address: DashboardOpt = None, token_file: TokenOpt = None) -> None:
    """Every job the cluster knows: id, status, entrypoint."""
    from tunepipe.engine import jobs

    for job in jobs.list_jobs(*_cluster(address, token_file)):
        typer.echo(f"{job.submission_id}\t{job.status.value}\t{job.entrypoint}")


@jobs_app.command("status")
def jobs_status(job: JobArg, address: DashboardOpt = None, token_file: TokenOpt = None) -> None:
    """The job's status (PENDING, RUNNING, STOPPED, SUCCEEDED or FAILED), then its study's view."""
    from tunepipe.engine import jobs
    from tunepipe.monitoring.jobs_view import job_view_lines

    info = jobs.job_info(job, *_cluster(address, token_file))
    typer.echo("\n".join([str(info.status.value), *job_view_lines(info)]))


@jobs_app.command("logs")
def jobs_logs(
    job: JobArg,
    address: DashboardOpt = None,
    token_file: TokenOpt = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="until the job ends")] = False,
) -> None:
    """The job's output so far (or followed until it ends)."""
    from tunepipe.engine import jobs

    for chunk in jobs.job_logs(job, *_cluster(address, token_file), follow=follow):
        typer.echo(chunk, nl=False)


@jobs_app.command("stop")
def jobs_stop(job: JobArg, address: DashboardOpt = None, token_file: TokenOpt = None) -> None:
    """Stop the job (SIGTERM: the study stops gracefully and stays resumable)."""
    from tunepipe.engine import jobs

    stopped = jobs.stop_job(job, *_cluster(address, token_file))
    typer.echo("stop requested" if stopped else "the job had already ended")
