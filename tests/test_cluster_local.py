"""A real 3-node Ray cluster on 127.0.0.1: reachable with the token, refused without it.

Run inside a private network namespace (see conftest_cluster.py):

    unshare -n sh -c 'ip link set lo up && source /work/venv/bin/activate && \
        pytest -m cluster -x tests/test_cluster_local.py'

The tests share one cluster and run in file order; the last two kill a node and stop it all.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest_cluster import cluster_driver, local_cluster  # noqa: F401

from tunepipe.engine.local_cluster import LocalCluster, psutil

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[1]


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _http_status(url: str, headers: dict[str, str] | None = None) -> int:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5):
            return 200
    except urllib.error.HTTPError as e:
        return e.code


def _listening(cluster: LocalCluster) -> dict[int, tuple[str, psutil.Process]]:
    """port -> (bound address, process) for every TCP port any cluster process listens on."""
    ports = {}
    for proc in cluster.processes():
        try:
            conns = proc.net_connections("tcp")
        except psutil.Error:
            continue
        for c in conns:
            if c.status == psutil.CONN_LISTEN:
                ports[c.laddr.port] = (c.laddr.ip, proc)
    return ports


def _probe_http(port: int) -> tuple[int, bytes] | None:
    """(status, body start) of GET /api/jobs/ on `port`, or None if it does not speak HTTP/1."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"GET /api/jobs/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            reply = b""
            while len(reply) < 4096 and (chunk := s.recv(4096)):
                reply += chunk
    except OSError:
        return None
    if not reply.startswith(b"HTTP/1."):
        return None
    return int(reply.split()[1]), reply.partition(b"\r\n\r\n")[2]


def _core_worker_pids(driver: LocalCluster) -> dict[str, int]:
    """Run one task pinned to each node; node id -> pid of the worker process that ran it."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    @ray.remote(num_cpus=1)
    def where() -> tuple[str, int]:
        return ray.get_runtime_context().get_node_id(), os.getpid()

    node_ids = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
    refs = [
        where.options(scheduling_strategy=NodeAffinitySchedulingStrategy(nid, soft=False)).remote()
        for nid in node_ids
    ]
    return dict(ray.get(refs, timeout=60))


def test_driver_with_token_sees_three_nodes_and_runs_a_task_on_each(cluster_driver):  # noqa: F811
    import ray

    alive = [n for n in ray.nodes() if n["Alive"]]
    assert len(alive) == 3
    assert {n["NodeManagerAddress"] for n in alive} == {"127.0.0.1"}

    ran_on = _core_worker_pids(cluster_driver)
    assert set(ran_on) == {n["NodeID"] for n in alive}
    # Worker processes leave their node's process group; stop() must still find each of them.
    found = {p.pid for p in cluster_driver.processes()}
    assert set(ran_on.values()) <= found


def test_dashboard_needs_the_token(local_cluster):  # noqa: F811
    url = f"{local_cluster.dashboard_url}/api/version"
    assert _http_status(url) == 401
    assert _http_status(url, {"Authorization": "Bearer not-the-token"}) == 403
    assert _http_status(url, local_cluster.headers()) == 200
    assert _http_status(f"{local_cluster.dashboard_url}/api/jobs/", local_cluster.headers()) == 200


def test_job_client_without_the_token_is_refused(local_cluster, tmp_path):  # noqa: F811
    # A clean process: no RAY_AUTH_* and an empty HOME, so Ray cannot find any token by itself.
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    env["HOME"] = str(tmp_path)
    code = (
        "from ray.job_submission import JobSubmissionClient\n"
        f"JobSubmissionClient({local_cluster.dashboard_url!r}).list_jobs()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "Authentication required" in done.stderr or "401" in done.stderr, done.stderr[-2000:]

    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(local_cluster.dashboard_url, headers=local_cluster.headers())
    assert isinstance(client.list_jobs(), list)


def test_every_port_is_loopback_and_every_http_port_needs_the_token(local_cluster):  # noqa: F811
    listening = _listening(local_cluster)
    loopback = {ip: ipaddress.ip_address(ip) for ip, _ in listening.values()}
    not_loopback = {
        port: ip
        for port, (ip, _) in listening.items()
        if getattr(loopback[ip], "ipv4_mapped", None) != ipaddress.ip_address("127.0.0.1")
        and loopback[ip] != ipaddress.ip_address("127.0.0.1")
    }
    assert not not_loopback, f"ports bound beyond 127.0.0.1: {not_loopback}"

    http = {port: _probe_http(port) for port in listening}
    http = {port: reply for port, reply in http.items() if reply is not None}
    open_http = {port: reply for port, reply in http.items() if reply[0] not in (401, 403)}
    # Ray's Prometheus exporters answer any GET without a token (read-only metrics; Ray's token
    # auth does not cover them). Every other HTTP port must refuse. See docs/clusters.md.
    exporters = {node.ports["metrics-export-port"] for node in local_cluster.state.nodes}
    head = local_cluster.state.nodes[0].ports
    exporters |= {head["autoscaler-metric-port"], head["dashboard-metric-port"]}
    unexpected = {
        port: (status, " ".join(listening[port][1].cmdline())[:80])
        for port, (status, _) in open_http.items()
        if port not in exporters
    }
    assert not unexpected, f"HTTP ports answering without a token: {unexpected}"
    for port, (_, body) in open_http.items():
        assert b"# HELP" in body or b"# TYPE" in body, f"port {port} is not a metrics exporter"
    # The probe must have reached the ports that matter, or this test proves nothing.
    expected = {head["dashboard-port"]}
    for node in local_cluster.state.nodes:
        expected |= {
            node.ports["dashboard-agent-listen-port"],
            node.ports["runtime-env-agent-port"],
        }
    assert expected <= set(http) - set(open_http)


def _grpc_code(port: int, stub_cls, method: str, request, metadata=None):
    """The status code of one unary gRPC call to 127.0.0.1:`port` (OK if it succeeded)."""
    import grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            getattr(stub_cls(channel), method)(request, timeout=10, metadata=metadata)
        except grpc.RpcError as e:
            return e.code()
    return grpc.StatusCode.OK


def test_grpc_servers_need_the_token(local_cluster):  # noqa: F811
    import grpc
    from ray.core.generated import (
        gcs_service_pb2,
        gcs_service_pb2_grpc,
        node_manager_pb2,
        node_manager_pb2_grpc,
        ray_client_pb2,
        ray_client_pb2_grpc,
        reporter_pb2,
        reporter_pb2_grpc,
    )

    token = list(local_cluster.headers().items())
    head = local_cluster.state.nodes[0].ports
    calls = [
        (
            head["port"],
            gcs_service_pb2_grpc.NodeInfoGcsServiceStub,
            "GetAllNodeInfo",
            gcs_service_pb2.GetAllNodeInfoRequest(),
        ),
        (
            head["ray-client-server-port"],
            ray_client_pb2_grpc.RayletDriverStub,
            "ClusterInfo",
            ray_client_pb2.ClusterInfoRequest(type=ray_client_pb2.ClusterInfoType.PING),
        ),
    ]
    for node in local_cluster.state.nodes:
        calls += [
            (
                node.ports["node-manager-port"],
                node_manager_pb2_grpc.NodeManagerServiceStub,
                "GetResourceLoad",
                node_manager_pb2.GetResourceLoadRequest(),
            ),
            (
                node.ports["dashboard-agent-grpc-port"],
                reporter_pb2_grpc.ReporterServiceStub,
                "GetTraceback",
                reporter_pb2.GetTracebackRequest(pid=1),
            ),
        ]
    without = {
        (port, method): _grpc_code(port, stub, method, req) for port, stub, method, req in calls
    }
    with_token = {
        (port, method): _grpc_code(port, stub, method, req, token)
        for port, stub, method, req in calls
    }
    assert set(without.values()) == {grpc.StatusCode.UNAUTHENTICATED}, without
    # With the token every server lets the call through (it may still fail for its own reasons).
    assert grpc.StatusCode.UNAUTHENTICATED not in set(with_token.values()), with_token


def cluster_script(
    command: str, folder, timeout: float, *extra: str
) -> subprocess.CompletedProcess:
    """cluster/local_cluster.py as a user runs it, from another process."""
    script = REPO / "cluster" / "local_cluster.py"
    return subprocess.run(
        [sys.executable, str(script), command, "--dir", str(folder), *extra],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def test_cli_status_reads_the_cluster_from_its_folder(local_cluster):  # noqa: F811
    done = cluster_script("status", local_cluster.dir, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "3 alive" in done.stdout
    assert local_cluster.dashboard_url in done.stdout
    assert (local_cluster.token_path.read_text().strip()) not in done.stdout + done.stderr


def test_kill_node_removes_its_processes(local_cluster):  # noqa: F811
    victims = local_cluster.node_processes(1)
    assert len(victims) >= 3  # ray start, raylet, agents at least
    local_cluster.kill_node(1)
    assert not [p.pid for p in victims if _alive(p)]
    assert local_cluster.node_processes(1) == []
    assert local_cluster.node_processes(2), "killing node 1 must leave node 2 alone"
    deadline = time.monotonic() + 20
    while local_cluster.alive_nodes() != 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert local_cluster.alive_nodes() == 2


def test_cli_kill_is_seen_at_once_and_status_can_be_piped(local_cluster):  # noqa: F811
    done = cluster_script("kill", local_cluster.dir, 60, "2")
    assert done.returncode == 0, done.stderr
    status = cluster_script("status", local_cluster.dir, timeout=60)
    assert status.returncode == 0, status.stderr
    assert "node 2 (worker, 1 CPU): killed, 0 processes" in status.stdout
    assert not [
        line for line in status.stdout.splitlines() if ": alive" in line and "node 2" in line
    ]
    script = REPO / "cluster" / "local_cluster.py"
    piped = subprocess.run(
        f"{sys.executable} {script} status --dir {local_cluster.dir} | head -1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert piped.stdout.count("\n") == 1 and "BrokenPipe" not in piped.stderr, piped.stderr


def test_cli_stop_from_another_process_leaves_nothing_but_what_it_did_not_start(
    local_cluster,  # noqa: F811
):
    started = local_cluster.processes()
    assert started
    # A user reading a node's log names the cluster's folder; it is not the cluster's to stop.
    reader = subprocess.Popen(["tail", "-f", str(local_cluster.dir / "node0.log")])
    try:
        done = cluster_script("stop", local_cluster.dir, timeout=90)
        assert done.returncode == 0, done.stderr
        assert not [p.pid for p in started if _alive(p)]
        assert reader.poll() is None, "stop signalled a process the cluster never started"
        marker = str(local_cluster.dir)
        leftovers = [
            p.pid
            for p in psutil.process_iter(["cmdline"])
            if any(marker in arg for arg in p.info["cmdline"] or ())
            and p.pid not in (os.getpid(), reader.pid)
        ]
        assert not leftovers
        assert not (local_cluster.dir / "cluster.json").exists()
        again = cluster_script("stop", local_cluster.dir, timeout=60)
        assert again.returncode == 0 and "already stopped" in again.stdout, again.stderr
    finally:
        reader.kill()
        reader.wait()
