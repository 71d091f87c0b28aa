"""A local cluster's node command lines and its cluster.json, without starting Ray."""

from __future__ import annotations

import os

import pytest

from tunepipe.engine.cluster_nodes import HEAD_ENV_PORTS, new_node, node_command, node_env
from tunepipe.engine.cluster_state import ClusterError, ClusterState, read_state, write_state


def test_head_and_worker_commands(tmp_path):
    head = new_node(tmp_path, 0, "head", num_cpus=1)
    worker = new_node(tmp_path, 1, "worker", num_cpus=2)
    for node in (head, worker):
        assert len(set(node.ports.values())) == len(node.ports)  # held open together: distinct
    head_cmd = node_command(head, None)
    worker_cmd = node_command(worker, "127.0.0.1:6390")
    assert "--head" in head_cmd and not any(a.startswith("--address") for a in head_cmd)
    assert "--address=127.0.0.1:6390" in worker_cmd and "--head" not in worker_cmd
    assert f"--port={head.ports['port']}" in head_cmd and "--num-cpus=2" in worker_cmd
    assert f"--temp-dir={tmp_path / 'n1'}" in worker_cmd
    # Ports that only an environment variable sets never reach the command line...
    assert not any(name in " ".join(head_cmd) for name in HEAD_ENV_PORTS)
    env = node_env(head, {"RAY_AUTH_MODE": "token"})
    for name, var in HEAD_ENV_PORTS.items():  # ...but the head's environment
        assert env[var] == str(head.ports[name])
    assert env["RAY_AUTH_MODE"] == "token"
    worker_env = node_env(worker, {})
    for var in HEAD_ENV_PORTS.values():  # a worker keeps whatever this process has
        assert worker_env.get(var) == os.environ.get(var)


def test_cluster_json_round_trip_and_a_missing_one(tmp_path):
    state = ClusterState(
        dir=str(tmp_path), token_path="/t", nodes=[new_node(tmp_path, 0, "head", 1)]
    )
    state.nodes[0].pid = 42
    write_state(state)
    assert read_state(tmp_path) == state
    assert read_state(tmp_path).address == f"127.0.0.1:{state.nodes[0].ports['port']}"
    with pytest.raises(ClusterError, match="cluster/local_cluster.py start --dir"):
        read_state(tmp_path / "elsewhere")
