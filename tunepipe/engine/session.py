"""Starting or joining Ray with token authentication from tunepipe's own 0600 token file."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
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
    """Point this process (and the Ray processes it starts) at tunepipe's own 0600 token file.

    A token given in RAY_AUTH_TOKEN (KubeRay injects the cluster's from its Secret) seeds a
    missing file, so a driver inside the cluster joins it instead of minting a token of its own.
    """
    path = ensure_token(path or token_path(), token=os.environ.get("RAY_AUTH_TOKEN"))
    os.environ.pop("RAY_AUTH_TOKEN", None)  # the file is the one source of the token
    if "ray" in sys.modules:  # Ray caches its mode and token at import: refresh both
        use_token_in_this_process(path)
    else:
        os.environ.update(auth_env(path))
    return path


# What every trial's worker imports anyway. An embedded Ray's raylet has the workers it starts
# import these as they boot (its `preload_python_modules` setting), and the ones it prestarts are
# ready before Tune asks for them: `tunepipe run` starts Ray before the sanity stage, which then
# overlaps the imports. torch._dynamo is imported by the first optimizer a process builds.
PRELOAD_MODULES = ["tunepipe.train.trainable", "tunepipe.train.loop", "torch._dynamo"]

_embedded = False  # whether this process started the Ray it is connected to
_live_pythonpath: str | None = None  # folders the workers of an already-running Ray lack


def _missing_pythonpath(paths: list[str]) -> str | None:
    """PYTHONPATH for trial actors when `paths` are not on the running Ray's workers' path."""
    have = set(filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep)))
    if all(p in have for p in paths):
        return None
    return os.pathsep.join([*paths, *filter(None, [os.environ.get("PYTHONPATH")])])


def init_ray(
    address: str | None,
    num_cpus: int | None = None,
    extra_pythonpath: list[str] = (),
    dashboard: bool = True,
    warm: bool = False,
) -> None:
    """Start an embedded Ray (address None) or join the cluster at `address` (as ray.init takes).

    `warm`: `address` is the warm Ray of `tunepipe up`, on this machine, whose workers inherit
    the environment and preloads an embedded Ray gives them (engine/warm.py)."""
    import logging

    global _embedded, _live_pythonpath
    live = sys.modules.get("ray")
    if live is not None and live.is_initialized():
        # A notebook's or a test's Ray: its auth is set up (never re-initialised here), but its
        # workers never saw the study's folders: trial actors get them (see below).
        _live_pythonpath = _missing_pythonpath(list(extra_pythonpath))
        return
    if os.environ.get("RAY_AUTH_MODE") != "disabled":  # opting out stays possible, explicitly
        use_token_auth()
    import ray

    _live_pythonpath = None
    if extra_pythonpath:  # workers import the user's trainable/model from these folders
        os.environ["PYTHONPATH"] = os.pathsep.join(
            [*extra_pythonpath, *filter(None, [os.environ.get("PYTHONPATH")])]
        )
    runtime_env = (
        {"env_vars": {"PYTHONPATH": os.environ["PYTHONPATH"]}}
        if (extra_pythonpath and address)
        else None
    )
    # Inside a Ray job RAY_ADDRESS joins that cluster; its raylets were configured when started.
    embedded = address is None and not os.environ.get("RAY_ADDRESS")
    local = (
        {"num_cpus": num_cpus, "include_dashboard": dashboard, "dashboard_host": "127.0.0.1"}
        if address is None
        else {}
    )
    if embedded:
        # What Tune would give each trial actor in its own runtime_env; workers inherit it from
        # here instead (see trial_actors_on_prestarted_workers).
        os.environ.setdefault("PL_DISABLE_FORK", "1")
        local["_system_config"] = {
            "preload_python_modules": PRELOAD_MODULES,
            # The raylet culls workers idle for over 1 s whenever it counts more than its soft
            # limit, which it can as Tune places the first trials; the prestarted, preloaded
            # ones are exactly the workers those trials need.
            "idle_worker_killing_time_threshold_ms": 600_000,
        }
    ray.init(
        address=address,
        log_to_driver=False,
        logging_level=logging.WARNING,
        runtime_env=runtime_env,
        **local,
    )
    _embedded = embedded or warm


@contextmanager
def trial_actors_on_prestarted_workers() -> Iterator[None]:
    """While Tune runs on the embedded Ray, let its trial actors take the prestarted workers.

    Tune gives every trial actor a runtime_env of env_vars ({"PL_DISABLE_FORK": "1"}, plus
    credentials found in the driver's environment). A runtime_env other than the job's makes Ray
    start a fresh worker process for each actor instead of taking a prestarted one: about 2.5 s
    of Python, Ray and torch imports on a 2-core machine before the first epoch. On the embedded
    Ray every worker inherits this process's environment already (init_ray sets
    PL_DISABLE_FORK), so Tune's default entries are dropped for the duration; credentials Tune
    propagates still make it a runtime_env of its own. Elsewhere this changes nothing, except
    on a Ray that was running before the study (a notebook, a test): its workers never saw the
    study's folder and code_dir, so each trial actor gets them as PYTHONPATH (a fresh worker).
    """
    from tunepipe.engine.ray_private import tune_default_env_vars

    defaults = tune_default_env_vars() if (_embedded or _live_pythonpath) else None
    if defaults is None:
        yield
        return
    saved = dict(defaults)
    if _embedded and not _live_pythonpath:
        defaults.clear()
    if _live_pythonpath:  # Ray was already running: fresh workers, with the study's code
        defaults["PYTHONPATH"] = _live_pythonpath
    try:
        yield
    finally:
        defaults.update(saved)
