"""Starting or joining Ray with token authentication from tunepipe's own 0600 token file."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tunepipe.engine.auth import (
    DEFAULT_TOKEN_PATH,
    auth_env,
    ensure_token,
    use_token_in_this_process,
)


def token_path() -> Path:
    """TUNEPIPE_RAY_TOKEN_PATH, else RAY_AUTH_TOKEN_PATH, else ~/.tunepipe/ray_auth_token."""
    given = os.environ.get("TUNEPIPE_RAY_TOKEN_PATH") or os.environ.get("RAY_AUTH_TOKEN_PATH")
    return Path(given) if given else DEFAULT_TOKEN_PATH


def use_token_auth(path: Path | None = None) -> Path:
    """Point this process (and the Ray processes it starts) at tunepipe's own 0600 token file."""
    path = ensure_token(path or token_path())
    os.environ.pop("RAY_AUTH_TOKEN", None)  # the file is the one source of the token
    if "ray" in sys.modules:  # Ray caches its mode and token at import: refresh both
        use_token_in_this_process(path)
    else:
        os.environ.update(auth_env(path))
    return path


def init_ray(
    address: str | None,
    num_cpus: int | None = None,
    extra_pythonpath: list[str] = (),
    dashboard: bool = True,
) -> None:
    """Start an embedded Ray (address None) or join the cluster at `address` (as ray.init takes)."""
    import logging

    if os.environ.get("RAY_AUTH_MODE") != "disabled":  # opting out stays possible, explicitly
        use_token_auth()
    import ray

    if ray.is_initialized():
        return
    if extra_pythonpath:  # workers import the user's trainable/model from these folders
        os.environ["PYTHONPATH"] = os.pathsep.join(
            [*extra_pythonpath, *filter(None, [os.environ.get("PYTHONPATH")])]
        )
    runtime_env = (
        {"env_vars": {"PYTHONPATH": os.environ["PYTHONPATH"]}}
        if (extra_pythonpath and address)
        else None
    )
    local = (
        {"num_cpus": num_cpus, "include_dashboard": dashboard, "dashboard_host": "127.0.0.1"}
        if address is None
        else {}
    )
    ray.init(
        address=address,
        log_to_driver=False,
        logging_level=logging.WARNING,
        runtime_env=runtime_env,
        **local,
    )
