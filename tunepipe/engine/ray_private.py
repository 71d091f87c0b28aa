"""Every place tunepipe reads a private Ray Tune attribute that has no public accessor (Ray 2.60).

Each reach is named here, says why there is no public way, and is covered by
tests/test_ray_internals.py, which fails loudly when a Ray upgrade moves it. The scheduler
subclasses in tunepipe_schedulers/ override private hooks of Ray's ASHA and PBT (`_Bracket`,
`_exploit`, `_get_new_config`); those are tested there too. Token auth's private names are in
auth.py (tests/test_cluster_auth.py).
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Iterator
from contextlib import contextmanager
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


_BUILT_IN_LOGGERS = (
    "WandbLoggerCallback",
    "MLflowLoggerCallback",
    "CometLoggerCallback",
    "AimLoggerCallback",
)


@contextmanager
def callback_usage_without_imports() -> Iterator[None]:
    """Within it, Tune's usage tag for callbacks (`ray.air._internal.usage._count_callbacks`)
    counts them by class name instead of importing Ray's W&B, MLflow, Comet and Aim integrations
    to compare classes: with mlflow and wandb installed that import took 1.2 s of the driver's
    CPU before the first trial started. The tag it records is the same. No public switch skips
    it (usage stats off still imports). If Ray moves the function, nothing is replaced.
    """
    try:
        from ray.air._internal import usage
        from ray.tune import Callback
        from ray.tune.logger import LoggerCallback
        from ray.tune.utils.callback import DEFAULT_CALLBACK_CLASSES
    except ImportError:
        yield
        return
    original = getattr(usage, "_count_callbacks", None)
    if original is None:
        yield
        return
    names = {*_BUILT_IN_LOGGERS, *(c.__name__ for c in DEFAULT_CALLBACK_CLASSES)}

    def count(callbacks: list | None) -> dict[str, int]:
        counts: dict[str, int] = collections.defaultdict(int)
        for cb in callbacks or []:
            if not isinstance(cb, Callback):
                continue
            name = type(cb).__name__
            if name in names:
                counts[name] += 1
            elif isinstance(cb, LoggerCallback):
                counts["CustomLoggerCallback"] += 1
            else:
                counts["CustomCallback"] += 1
        return counts

    usage._count_callbacks = count
    try:
        yield
    finally:
        usage._count_callbacks = original


def worker_prestarter() -> Any:
    """Before disconnecting from the warm Ray: a callable that asks its raylet to start idle
    Python workers for the next study, up to one per CPU with those already idle (None when
    this Ray has no way to). A study with your own code does not take them (docs/speed.md), so
    after one nothing more is started.

    Why: Ray prestarts workers (booting with torch preloaded, 2-3 CPU-seconds each here) when
    the raylet starts, for the first job; every later job's trial actors boot theirs on demand.
    So on a warm Ray the first study after `tunepipe up` found its workers ready and every later
    one waited for them (measured: 7.8 s, then 10.5 s and 10.9 s for the same study, search
    5.0 s against 8.3-8.7 s). A worker prestarted for no job is taken by the next job's actors,
    as `up`'s are (checked by pid). There is no public API for it: this calls the raylet's
    PrestartWorkers RPC with Ray's own gRPC channel (token auth included), from protobufs Ray
    ships (tests/test_ray_internals.py checks they are there).
    """
    import ray

    try:
        from ray._private.grpc_utils import init_grpc_channel
        from ray.core.generated import common_pb2, node_manager_pb2, node_manager_pb2_grpc
    except ImportError as exc:
        logger.warning("Ray moved what prestarts workers (%s); the next study starts its own.", exc)
        return None
    node = next((n for n in ray.nodes() if n.get("Alive")), None)
    cpus = int((node or {}).get("Resources", {}).get("CPU", 0))
    if node is None or cpus < 1:
        return None
    socket = node.get("RayletSocketName", "")
    channel = init_grpc_channel(f"{node['NodeManagerAddress']}:{node['NodeManagerPort']}")
    stub = node_manager_pb2_grpc.NodeManagerServiceStub(channel)

    def prestart() -> None:
        try:
            wanted = cpus - len(idle_workers(socket))
            if wanted > 0:
                request = node_manager_pb2.PrestartWorkersRequest(
                    language=common_pb2.PYTHON, num_workers=wanted, keep_alive_duration_secs=0
                )
                stub.PrestartWorkers(request, timeout=5)
        except Exception as exc:  # grpc.RpcError and kin: the study itself is done and written
            logger.warning(
                "Could not prestart workers on the warm Ray for the next study (%s); it will "
                "start them itself, about 3 s later.", exc,
            )  # fmt: skip
        finally:
            channel.close()

    return prestart


def idle_workers(raylet_socket: str) -> list[int]:
    """Pids of the idle Python workers (titled ray::IDLE) of the raylet on this machine that
    listens on `raylet_socket` (ray.nodes()'s RayletSocketName; its ports can be 0, dynamic)."""
    import psutil

    flag = f"--raylet_socket_name={raylet_socket}"
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if cmd and cmd[0].endswith("raylet") and flag in cmd:
            try:
                children = proc.children()
            except psutil.Error:
                return []
            return [c.pid for c in children if _title(c).startswith("ray::IDLE")]
    return []


def _title(proc: Any) -> str:
    import psutil

    try:
        return (proc.cmdline() or [""])[0]
    except psutil.Error:
        return ""


def shutdown_embedded() -> None:
    """ray.shutdown() for the Ray this process started, without Ray's 1 s wait on its
    autoscaler monitor.

    Ray's shutdown stops its processes one by one with SIGTERM, the raylet and the GCS first, and
    waits up to 1 s for each (`Node._kill_process_impl`). The monitor's SIGTERM handler then
    reports to a GCS that is gone and never returns, so every embedded study waited the full
    second before Ray SIGKILLed it (measured: 1.01 s of 1.1-1.45 s). SIGKILLed first, while the
    GCS runs, it costs nothing: it keeps no state a stopping cluster needs, and Ray would kill
    it the same way a second later. The monitor is only reached through the private
    `ray._private.worker._global_node` (the node this process started; None when it joined a
    running cluster, which ray.shutdown leaves running); if that moved, plain ray.shutdown().
    """
    import ray

    try:
        from ray._private import ray_constants, worker
    except ImportError:  # moved: Ray's own shutdown, a second slower
        ray.shutdown()
        return
    node = getattr(worker, "_global_node", None)
    processes = getattr(node, "all_processes", None) or {}
    monitors = processes.get(getattr(ray_constants, "PROCESS_TYPE_MONITOR", "monitor"), [])
    for info in monitors:
        process = getattr(info, "process", None)
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
    ray.shutdown()
