"""The Ray dashboard: where it is, how to log in, and wiring its Metrics tab to Grafana.

Ray 2.60's dashboard asks for the cluster's token (token authentication is on). tunepipe keeps
that token in its own 0600 file (`tunepipe.engine.session.token_path`) and `tunepipe token`
prints it on request; nothing here ever prints the token itself.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

GRAFANA_ENV = "RAY_GRAFANA_HOST"  # Ray's dashboard reads these when it starts
GRAFANA_IFRAME_ENV = "RAY_GRAFANA_IFRAME_HOST"
PROMETHEUS_ENV = "RAY_PROMETHEUS_HOST"


def wire_metrics(grafana: str | None, prometheus: str | None) -> None:
    """Point the Ray about to start (embedded, or `ray start` children) at Grafana/Prometheus.

    Ray's dashboard reads RAY_GRAFANA_HOST and RAY_PROMETHEUS_HOST once, when it starts, from its
    environment, which it inherits from this process; a Ray already running keeps its own.
    """
    from tunepipe.errors import TunepipeError

    for flag, url in (("--grafana", grafana), ("--prometheus", prometheus)):
        if url is not None and not url.startswith(("http://", "https://")):
            raise TunepipeError(f"{flag} {url!r} is not a URL; write it as http://HOST:PORT")
    if grafana:
        os.environ[GRAFANA_ENV] = grafana.rstrip("/")
        os.environ.setdefault(GRAFANA_IFRAME_ENV, grafana.rstrip("/"))
    if prometheus:
        os.environ[PROMETHEUS_ENV] = prometheus.rstrip("/")


def dashboard_url() -> str | None:
    """The dashboard of the Ray this process is connected to, as http://HOST:PORT (None: none)."""
    try:
        from ray._private.worker import get_dashboard_url  # no public accessor in 2.60

        url = get_dashboard_url()
    except Exception:  # noqa: BLE001 - a Ray without a dashboard, or not connected
        return None
    if not url:
        return None
    return url if url.startswith("http") else f"http://{url}"


def login_hint(url: str, path: Path | None = None) -> str:
    """One line: where the dashboard is and how to log in, without the token itself."""
    from tunepipe.engine.session import token_path

    command = "tunepipe token" + (f" --token-file {path}" if path is not None else "")
    return (
        f"Ray dashboard: {url} (it asks for the cluster's token, kept in "
        f"{path or token_path()}; `{command}` prints it)"
    )


def session_dir() -> Path | None:
    """The session folder of the Ray this process started or joined on this host."""
    try:
        import ray._private.worker as worker

        node = worker._global_node  # no public accessor in 2.60
        return Path(node.get_session_dir_path()) if node is not None else None
    except Exception:  # noqa: BLE001 - a client connection has no local node
        return None


def install_study_dashboard(session: Path | None) -> Path | None:
    """Put the study dashboard beside Ray's own in the session folder, where the Grafana that
    Ray's generated grafana.ini provisions reads them; None when Ray wrote no dashboards here."""
    from tunepipe.monitoring.dashboards import study_dashboard

    folder = session / "metrics" / "grafana" / "dashboards" if session else None
    if folder is None or not folder.is_dir():
        return None
    board: dict[str, Any] = study_dashboard()
    path = folder / f"{board['uid']}.json"
    path.write_text(json.dumps(board, indent=2) + "\n")
    return path


def read_token_for_user(path: Path | None = None) -> str:
    """The cluster token, for `tunepipe token` (printing it is what the user asked for)."""
    from tunepipe.engine.auth import check_token_file, read_token
    from tunepipe.engine.session import token_path

    path = (path or token_path()).expanduser()
    check_token_file(path)
    return read_token(path)
