"""Every place tunepipe reads a private Ray Tune attribute that has no public accessor (Ray 2.60).

Each reach is named here, says why there is no public way, and is covered by
tests/test_ray_internals.py, which fails loudly when a Ray upgrade moves it. The scheduler
subclasses in tunepipe_schedulers/ override private hooks of Ray's ASHA and PBT (`_Bracket`,
`_exploit`, `_get_new_config`); those are tested there too. Token auth's private names are in
auth.py (tests/test_cluster_auth.py).
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)


def tune_default_env_vars() -> dict[str, str] | None:
    """Ray Tune's per-actor default env_vars (a module-level dict), None if it moved.

    No public API sets the runtime_env Tune gives trial actors. When the dict is gone, trials
    merely start in fresh worker processes again (slower, never wrong), so a run goes on and
    says so once.
    """
    try:
        from ray.tune.execution import class_cache
    except ImportError:
        found = None
    else:
        found = getattr(class_cache, "DEFAULT_ENV_VARS", None)
    if not isinstance(found, dict):
        logger.warning(
            "ray.tune.execution.class_cache.DEFAULT_ENV_VARS is gone in this Ray; trial actors "
            "start in fresh worker processes (about 2.5 s each on 2 cores)."
        )
        return None
    return found


def _restored(tuner: Any, config: str, field: str, caller: str) -> Any:
    """`tuner._local_tuner.<config>.<field>`: where Ray 2.60 keeps what a restored Tuner runs
    with; a loud error naming `caller` if Ray moves it."""
    try:
        return getattr(getattr(tuner._local_tuner, config), field)
    except AttributeError as exc:
        raise RuntimeError(
            f"This Ray version keeps a restored Tuner's {config} elsewhere "
            f"({exc}); tunepipe.engine.ray_private.{caller} needs updating."
        ) from exc


def restored_scheduler(tuner: Any) -> Any:
    """The scheduler a `Tuner.restore`d tuner will run with (unpickled from its tuner.pkl).

    `Tuner.restore` takes no scheduler and Ray offers no accessor, yet the decisions tunepipe
    writes (stop reasons, decays) live on that object, so it is read where Tune keeps it.
    """
    return _restored(tuner, "_tune_config", "scheduler", "restored_scheduler")


def restored_stop(tuner: Any) -> Any:
    """The stopper (`RunConfig.stop`) a `Tuner.restore`d tuner will run with, or None.

    Like the scheduler, it comes back from tuner.pkl and Ray offers no accessor; a resume that
    changes a budget changes it on this object.
    """
    return _restored(tuner, "_run_config", "stop", "restored_stop")


def restored_callbacks(tuner: Any) -> list:
    """The callbacks (`RunConfig.callbacks`) a `Tuner.restore`d tuner will run with: they come
    back from tuner.pkl too, and the progress view must ask the restored scheduler."""
    return list(_restored(tuner, "_run_config", "callbacks", "restored_callbacks") or [])
