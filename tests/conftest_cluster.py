"""Fixtures that start a real local Ray cluster (1 head + 2 workers, 1 CPU each).

Import them into a test module marked `cluster`:

    from conftest_cluster import cluster_driver, local_cluster  # noqa: F401

and run that module inside a private network namespace:

    unshare -n sh -c 'ip link set lo up && pytest -m cluster tests/...'

Outside a namespace of its own Ray replaces 127.0.0.1 with the host's address and would listen on
the machine's network, so the fixture refuses to start there.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import struct
import tempfile
from collections.abc import Iterator

import pytest

from tunepipe.engine.auth import use_token_in_this_process
from tunepipe.engine.local_cluster import LocalCluster

_SIOCGIFFLAGS = 0x8913
_IFF_UP = 0x1
_HOW_TO_RUN = (
    "Run cluster tests inside a private network namespace: "
    "unshare -n sh -c 'ip link set lo up && source /work/venv/bin/activate && "
    "pytest -m cluster tests/test_cluster_local.py'"
)


def _interface_up(name: str) -> bool:
    """Whether interface `name` of *this process's* network namespace is up.

    /sys/class/net cannot answer this: sysfs shows the namespace it was mounted in, so inside
    `unshare -n` it still lists the host's eth0. The ioctl asks the current namespace.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("256s", name.encode()[:15])
        reply = fcntl.ioctl(s.fileno(), _SIOCGIFFLAGS, request)
    (flags,) = struct.unpack("H", reply[16:18])
    return bool(flags & _IFF_UP)


def private_network_problem() -> str | None:
    """Why this process may not start a cluster here, or None inside a private namespace."""
    up = {name: _interface_up(name) for _, name in socket.if_nameindex()}
    exposed = sorted(name for name, is_up in up.items() if is_up and name != "lo")
    if exposed:
        return (
            f"Not in a private network namespace: interfaces {exposed} are up, and Ray would "
            f"bind the host's address instead of 127.0.0.1. {_HOW_TO_RUN}"
        )
    if not up.get("lo"):
        return f"The loopback interface is down, so Ray cannot listen on 127.0.0.1. {_HOW_TO_RUN}"
    return None


@pytest.fixture(scope="module")
def local_cluster() -> Iterator[LocalCluster]:
    """A started 3-node cluster for this module, with its own 0600 token; stopped afterwards.

    Module scope, not session: tests may kill nodes, and the next module deserves all three.
    """
    problem = private_network_problem()
    if problem:
        pytest.fail(problem, pytrace=False)
    # Short, because Ray's Unix socket paths under it must fit in 107 bytes.
    folder = tempfile.mkdtemp(prefix="tp-", dir="/tmp")
    cluster = LocalCluster(
        folder, workers=2, head_cpus=1, worker_cpus=1, token_path=os.path.join(folder, "token")
    )
    cluster.start(timeout=90)
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster_driver(local_cluster: LocalCluster) -> Iterator[LocalCluster]:
    """`local_cluster`, with this process connected to it as a Ray driver (token set).

    Ray caches the auth mode and token per process; `use_token_in_this_process` refreshes them, so
    a later module's cluster (another token) works too, and the environment is restored after.
    """
    import ray

    saved = {k: os.environ.get(k) for k in local_cluster.driver_env()}
    use_token_in_this_process(local_cluster.token_path)
    ray.init(address=local_cluster.address, logging_level="warning", log_to_driver=False)
    try:
        yield local_cluster
    finally:
        ray.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
