"""How one node of a local cluster is started: its ports, its `ray start` line, its environment.

Every node runs on 127.0.0.1 with ports of its own (picked free just before the start), so that
two clusters, or a cluster and an embedded Ray, never collide on one host.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tunepipe.engine.cluster_state import ClusterError, NodeState

# Ray 2.60 drains a node for 30 s on SIGTERM so Serve can move replicas; a local cluster has
# nothing to move, and a 30 s stop makes every test fixture slow.
NODE_ENV = {
    "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
    # Notice a killed node within about 3 s (default ~30 s) so fault-tolerance tests stay short.
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "500",
    "RAY_health_check_timeout_ms": "500",
    "RAY_health_check_failure_threshold": "4",
}
# A small object store per node: three nodes share one machine's /dev/shm and memory.
OBJECT_STORE_BYTES = 100 * 1024 * 1024
NODE_PORTS = (
    "node-manager-port",
    "object-manager-port",
    "dashboard-agent-listen-port",
    "dashboard-agent-grpc-port",
    "runtime-env-agent-port",
    "metrics-export-port",
)
HEAD_PORTS = ("port", "dashboard-port", "ray-client-server-port")
# Prometheus exporters of the head that have no `ray start` flag, only an environment variable;
# their defaults (44217, 44227) would collide between two clusters on one host.
HEAD_ENV_PORTS = {
    "autoscaler-metric-port": "AUTOSCALER_METRIC_PORT",
    "dashboard-metric-port": "DASHBOARD_METRIC_PORT",
}


def new_node(folder: Path, index: int, role: str, num_cpus: int) -> NodeState:
    """A node not started yet: its temp folder, log and free ports below `folder`."""
    names = NODE_PORTS + ((*HEAD_PORTS, *HEAD_ENV_PORTS) if role == "head" else ())
    return NodeState(
        index=index,
        role=role,
        num_cpus=num_cpus,
        temp_dir=str(folder / f"n{index}"),
        log=str(folder / f"node{index}.log"),
        ports=dict(zip(names, free_ports(len(names)), strict=True)),
    )


def node_command(node: NodeState, head_address: str | None) -> list[str]:
    """The `ray start --block` line of `node`; `head_address` None starts the head."""
    cmd = [
        str(Path(sys.executable).with_name("ray")),
        "start",
        "--block",
        f"--num-cpus={node.num_cpus}",
        "--num-gpus=0",
        f"--temp-dir={node.temp_dir}",
        "--node-ip-address=127.0.0.1",
        f"--object-store-memory={OBJECT_STORE_BYTES}",
        # 0: each worker process takes a port the OS picks, so nodes never collide.
        "--min-worker-port=0",
        "--max-worker-port=0",
        "--disable-usage-stats",
    ]
    cmd += [f"--{n}={port}" for n, port in node.ports.items() if n not in HEAD_ENV_PORTS]
    if head_address is None:
        cmd += ["--head", "--dashboard-host=127.0.0.1", "--include-dashboard=true"]
    else:
        cmd += [f"--address={head_address}"]
    return cmd


def node_env(node: NodeState, auth: dict[str, str]) -> dict[str, str]:
    """This process's environment plus the node settings, the auth variables and head ports."""
    env = {**os.environ, **NODE_ENV, **auth}
    env.update({var: str(node.ports[n]) for n, var in HEAD_ENV_PORTS.items() if n in node.ports})
    return env


def free_ports(n: int) -> list[int]:
    """`n` distinct ports free on 127.0.0.1 right now (all held open together, so distinct)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_for_port(
    port: int, timeout: float, node: NodeState, alive: Callable[[NodeState], bool]
) -> None:
    """Wait until something listens on 127.0.0.1:`port`, failing early if the node exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        if not alive(node):
            raise ClusterError(
                f"Ray {node.role} node exited while starting; see {node.log}:\n{tail(node.log)}"
            )
        time.sleep(0.2)
    raise ClusterError(
        f"Ray GCS did not listen on 127.0.0.1:{port} within {timeout:.0f} s; see {node.log}."
    )


def tail(path: str, lines: int = 15) -> str:
    """The last `lines` lines of a node log, for an error message."""
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
