"""`tunepipe grafana ...` and `tunepipe status`: thin Typer commands over this package."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

grafana_app = typer.Typer(
    no_args_is_help=True,
    help="Grafana dashboards for tunepipe studies and Ray: export files or push over HTTP.",
)

PrometheusOpt = Annotated[
    str,
    typer.Option(
        "--prometheus-url",
        envvar="RAY_PROMETHEUS_HOST",
        help="the Prometheus Grafana queries (its datasource URL)",
    ),
]


@grafana_app.command("export")
def grafana_export(
    out_dir: Annotated[Path, typer.Argument(help="folder to write into", show_default=False)],
    configmap: Annotated[
        bool,
        typer.Option(
            "--configmap",
            help='Kubernetes ConfigMaps labelled grafana_dashboard: "1" instead of '
            "provisioning files",
        ),
    ] = False,
    namespace: Annotated[
        str | None, typer.Option(help="the ConfigMaps' namespace (with --configmap)")
    ] = None,
    prometheus_url: PrometheusOpt = "http://localhost:9090",
) -> None:
    """Write dashboards and a Prometheus datasource as Grafana provisioning files or ConfigMaps."""
    from tunepipe.monitoring.grafana import export

    for path in export(
        out_dir, configmap=configmap, namespace=namespace, prometheus_url=prometheus_url
    ):
        typer.echo(str(path))


@grafana_app.command("push")
def grafana_push(
    url: Annotated[
        str, typer.Option(help="Grafana's address, http://HOST:3000", show_default=False)
    ],
    token: Annotated[
        str | None,
        typer.Option(envvar="GRAFANA_TOKEN", help="a service account token (Editor role)"),
    ] = None,
    user: Annotated[str | None, typer.Option(help="basic auth user instead of a token")] = None,
    password: Annotated[
        str | None, typer.Option(envvar="GRAFANA_PASSWORD", help="the --user's password")
    ] = None,
    prometheus_url: PrometheusOpt = "http://localhost:9090",
) -> None:
    """Upload the dashboards (upserted by uid) and the datasource; twice changes nothing."""
    from tunepipe.monitoring.grafana import push

    for line in push(url, token=token, user=user, password=password, prometheus_url=prometheus_url):
        typer.echo(line)


def status(
    run_dir: Annotated[str, typer.Argument(help="the run folder (<storage>/<study name>)")],
    watch: Annotated[bool, typer.Option("--watch", help="refresh until the study ends")] = False,
    interval: Annotated[float, typer.Option(help="seconds between refreshes", min=0.2)] = 2.0,
) -> None:
    """A study's live view: trials by state, best so far, stop reasons, epochs left, ETA."""
    from tunepipe.monitoring.status import show_status

    show_status(run_dir, watch=watch, interval=interval)


def token(
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            help="the token file (default: TUNEPIPE_RAY_TOKEN_PATH, RAY_AUTH_TOKEN_PATH, "
            "~/.tunepipe/ray_auth_token)",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Print the cluster's token, for the Ray dashboard's login prompt (keep it secret)."""
    from tunepipe.monitoring.ray_dashboard import read_token_for_user

    typer.echo(read_token_for_user(token_file))


GrafanaOpt = Annotated[
    str | None,
    typer.Option(
        "--grafana",
        envvar="RAY_GRAFANA_HOST",
        help="Grafana for the Ray dashboard's Metrics tab (embedded Ray)",
        show_default=False,
    ),
]
PrometheusHostOpt = Annotated[
    str | None,
    typer.Option(
        "--prometheus",
        envvar="RAY_PROMETHEUS_HOST",
        help="Prometheus for the Ray dashboard's Metrics tab (embedded Ray)",
        show_default=False,
    ),
]
