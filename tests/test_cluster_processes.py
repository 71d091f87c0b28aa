"""LocalCluster finds a node's processes by pid and session id only (no Ray started here): a
process that merely names the node's folder (`tail -f` on a node's log) is never signalled."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

import psutil

from tunepipe.engine.local_cluster import LocalCluster, NodeState

# A stand-in for `ray start`: its own session (as _launch starts it), one child that moves to
# its own process group as Ray's do (setpgrp), and that child outliving nothing.
FAKE_NODE = (
    "import os, subprocess, sys, time\n"
    "subprocess.Popen([sys.executable, '-c', 'import os, time; os.setpgrp(); time.sleep(300)'])\n"
    "time.sleep(300)\n"
)


def test_stop_signals_its_node_session_and_never_a_reader_of_its_log():
    folder = tempfile.mkdtemp(prefix="tp-", dir="/tmp")
    log = f"{folder}/n0/logs/raylet.out"  # a log inside the node's own temp folder
    os.makedirs(os.path.dirname(log))
    open(log, "w").close()
    node = subprocess.Popen([sys.executable, "-c", FAKE_NODE], start_new_session=True)
    reader = subprocess.Popen(["tail", "-f", log])  # names the folder; the user's, not Ray's
    try:
        cluster = LocalCluster(folder)
        root = psutil.Process(node.pid)
        deadline = time.monotonic() + 30
        while not root.children() and time.monotonic() < deadline:
            time.sleep(0.1)
        state = NodeState(0, "head", 1, f"{folder}/n0", log, {}, node.pid, root.create_time())
        cluster.state.nodes.append(state)
        family = {node.pid, *(c.pid for c in root.children(recursive=True))}
        assert {p.pid for p in cluster.processes()} == family and len(family) == 2
        cluster.stop(timeout=5)
        node.wait(timeout=10)
        assert not [pid for pid in family if psutil.pid_exists(pid) and _running(pid)]
        assert reader.poll() is None, "stop signalled a process the cluster never started"
        cluster.stop(timeout=5)  # again: nothing left, nothing raised
    finally:
        for p in (node, reader):
            p.kill()
            p.wait()


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
