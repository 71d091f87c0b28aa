"""A real multi-node Ray cluster on one machine, for tests and for trying `tunepipe submit`.

Each node is its own `ray start --block` process with its own CPUs, temp folder and ports, all on
127.0.0.1, with token authentication on (tunepipe's token file, see `auth.py`). Ray's own
`cluster_utils.Cluster` runs nodes inside the driver's process tree and shares one session; a
separate process per node is what a cluster really looks like, so killing a node here is what a
lost machine looks like to Ray.

Ray's processes leave the process group they were started in (setpgrp), and a node's processes may
outlive the `ray start` that spawned them. They keep its session, though: each node is started
with `setsid`, so its session id is the pid of a `ray start` this class started. A node's
processes are therefore found two ways, and the union is signalled: the process tree under its
`ray start`, and every process in its session started after it. Nothing is found by name: a
`less` on a node's log names the node's folder, and is not the cluster's to stop.

State (pids, ports, token path) is written to `cluster.json` in the cluster folder, so that
`LocalCluster.attach(folder).stop()` from another process stops a cluster started elsewhere.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from types import TracebackType

from tunepipe.engine.auth import auth_env, auth_headers, ensure_token
from tunepipe.engine.cluster_nodes import new_node, node_command, node_env, tail, wait_for_port
from tunepipe.engine.cluster_state import (
    STATE_FILE,
    ClusterError,
    ClusterState,
    NodeState,
    read_state,
    write_state,
)

try:
    import psutil
except ImportError:
    # Ray vendors psutil (ray/thirdparty_files) and puts it on sys.path when imported.
    __import__("ray")
    import psutil

# Unix socket paths are limited to 107 bytes; Ray appends about 70 (session_<date>_<pid>/sockets/
# plasma_store) to each node's temp folder.
_MAX_DIR_LEN = 36


class LocalCluster:
    """One head and `workers` worker nodes on 127.0.0.1, token authentication on.

    Use as a context manager, or call `start()` and `stop()`:

        with LocalCluster("/tmp/tp-c", workers=2) as cluster:
            os.environ.update(cluster.driver_env())
            ray.init(address=cluster.address)

    Args:
        dir: the cluster folder (node temp folders, logs, cluster.json); at most 36 characters
            because Ray puts Unix sockets below it.
        workers: number of worker nodes besides the head.
        head_cpus: CPUs the head offers to tasks.
        worker_cpus: CPUs each worker offers.
        token_path: the token file; `~/.tunepipe/ray_auth_token` when None.
    """

    def __init__(
        self,
        dir: str | os.PathLike[str],
        workers: int = 2,
        head_cpus: int = 1,
        worker_cpus: int = 1,
        token_path: str | os.PathLike[str] | None = None,
    ) -> None:
        folder = Path(dir).expanduser().resolve()
        if len(str(folder)) > _MAX_DIR_LEN:
            raise ClusterError(
                f"Cluster folder {folder} is {len(str(folder))} characters long; Ray's Unix "
                f"sockets below it must fit in 107 bytes. Use a folder of at most {_MAX_DIR_LEN} "
                "characters, e.g. one made by tempfile.mkdtemp(prefix='tp-', dir='/tmp')."
            )
        if workers < 0 or head_cpus < 0 or worker_cpus < 0:
            raise ClusterError(
                f"workers={workers}, head_cpus={head_cpus}, worker_cpus={worker_cpus}: "
                "all must be >= 0."
            )
        self._workers = workers
        self._head_cpus = head_cpus
        self._worker_cpus = worker_cpus
        self._token_arg = token_path
        # Kept so the `ray start` processes are reaped, not left as zombies or warned about.
        self._popens: list[subprocess.Popen[bytes]] = []
        self.state = ClusterState(dir=str(folder), token_path="")

    # ---- reaching the cluster ----------------------------------------------------------------

    @property
    def dir(self) -> Path:
        return Path(self.state.dir)

    @property
    def address(self) -> str:
        """The GCS address, for `ray.init(address=...)` and `ray start --address`."""
        return self.state.address

    @property
    def dashboard_url(self) -> str:
        """The dashboard and Jobs API, e.g. for `JobSubmissionClient(url, headers=...)`."""
        return self.state.dashboard_url

    @property
    def token_path(self) -> Path:
        return Path(self.state.token_path)

    def driver_env(self) -> dict[str, str]:
        """Environment variables a driver needs before `ray.init(address=self.address)`."""
        return auth_env(self.token_path)

    def headers(self) -> dict[str, str]:
        """HTTP headers for the dashboard and Jobs API; never log them."""
        return auth_headers(self.token_path)

    # ---- lifecycle ----------------------------------------------------------------------------

    @classmethod
    def attach(cls, dir: str | os.PathLike[str]) -> LocalCluster:
        """A handle on a cluster started by another process, read from its cluster.json."""
        state = read_state(Path(dir).expanduser().resolve())
        cluster = cls(state.dir)
        cluster.state = state
        return cluster

    def start(self, timeout: float = 60.0) -> LocalCluster:
        """Start the head, then the workers, and wait until every node is alive.

        On any failure the nodes already started are stopped before the error is raised.
        """
        if self.state.nodes:
            raise ClusterError(f"Cluster in {self.dir} was already started.")
        if (self.dir / STATE_FILE).exists():
            raise ClusterError(
                f"{self.dir / STATE_FILE} exists: a cluster may still run there. Stop it with "
                f"`python cluster/local_cluster.py stop --dir {self.dir}` or use another folder."
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state.token_path = str(ensure_token(self._token_arg))
        try:
            head = self._launch(0, "head", self._head_cpus)
            wait_for_port(head.ports["port"], timeout, head, self._root_alive)
            for i in range(1, self._workers + 1):
                self._launch(i, "worker", self._worker_cpus)
            self.wait_ready(self._workers + 1, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _launch(self, index: int, role: str, num_cpus: int) -> NodeState:
        node = new_node(self.dir, index, role, num_cpus)
        cmd = node_command(node, None if role == "head" else self.address)
        env = node_env(node, auth_env(self.token_path))
        with open(node.log, "ab") as log:
            # start_new_session: the node gets its own session id, one of the ways stop() finds
            # every process of this node and no other.
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        self._popens.append(proc)
        node.pid = proc.pid
        node.create_time = psutil.Process(proc.pid).create_time()
        self.state.nodes.append(node)
        self._save()
        return node

    def wait_ready(self, n_nodes: int, timeout: float = 60.0) -> None:
        """Wait until the cluster reports at least `n_nodes` alive nodes.

        Raises:
            ClusterError: a node's `ray start` exited, or the timeout passed; the message names
                the node log to read.
        """
        deadline = time.monotonic() + timeout
        alive = -1
        while time.monotonic() < deadline:
            for node in self.state.nodes:
                if not node.killed and not self._root_alive(node):
                    raise ClusterError(
                        f"Ray {node.role} node {node.index} exited while starting; see "
                        f"{node.log}:\n{tail(node.log)}"
                    )
            alive = self.alive_nodes()
            if alive >= n_nodes:
                return
            time.sleep(0.5)
        raise ClusterError(
            f"Only {max(alive, 0)} of {n_nodes} Ray nodes alive after {timeout:.0f} s at "
            f"{self.dashboard_url}; node logs are in {self.dir}."
        )

    def alive_nodes(self) -> int:
        """Number of nodes the head reports ALIVE, or -1 while its dashboard does not answer."""
        request = urllib.request.Request(
            f"{self.dashboard_url}/api/v0/nodes?limit=1000", headers=self.headers()
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                nodes = json.load(response)["data"]["result"]["result"]
        except (OSError, KeyError, ValueError):  # not up yet; URLError is an OSError
            return -1
        return sum(1 for n in nodes if n["state"] == "ALIVE")

    def kill_node(self, index: int, timeout: float = 10.0) -> None:
        """SIGKILL every process of worker node `index`, as if its machine were lost."""
        if not 1 <= index < len(self.state.nodes):
            raise ClusterError(
                f"No worker node {index}: worker nodes are 1..{len(self.state.nodes) - 1} "
                "(node 0 is the head)."
            )
        node = self.state.nodes[index]
        procs = self.node_processes(index)
        _signal_all(procs, signal.SIGKILL)
        left = _wait_gone(procs, timeout)
        if left:
            raise ClusterError(
                f"Processes {[p.pid for p in left]} of node {index} survived SIGKILL."
            )
        node.killed = True
        self._reap()
        self._save()

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM every process of every node, SIGKILL what is left after `timeout` seconds.

        Raises:
            ClusterError: some process is still alive after SIGKILL (its pid is named).
        """
        procs = self.processes()
        _signal_all(procs, signal.SIGTERM)
        left = _wait_gone(procs, timeout)
        _signal_all(left, signal.SIGKILL)
        left = _wait_gone(left, 5)
        # A process may have been spawned between the listing and the signals.
        late = self.processes()
        _signal_all(late, signal.SIGKILL)
        late_left = _wait_gone(late, 5)
        if left or late_left:
            pids = sorted({p.pid for p in left + late_left})
            raise ClusterError(
                f"Ray processes {pids} of the cluster in {self.dir} survived SIGKILL."
            )
        self._reap()
        with contextlib.suppress(FileNotFoundError):
            (self.dir / STATE_FILE).unlink()
        # Session folders hold sockets and logs of dead processes; the logs stay for debugging.
        for node in self.state.nodes:
            shutil.rmtree(Path(node.temp_dir) / "sockets", ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        if not self.state.nodes:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- finding processes --------------------------------------------------------------------

    def processes(self) -> list[psutil.Process]:
        """Every live process of every node (see the module docstring for how they are found)."""
        seen: dict[int, psutil.Process] = {}
        for i in range(len(self.state.nodes)):
            for p in self.node_processes(i):
                seen[p.pid] = p
        return list(seen.values())

    def node_processes(self, index: int) -> list[psutil.Process]:
        """Every live process of node `index`: its `ray start` tree, session and temp folder."""
        node = self.state.nodes[index]
        found: dict[int, psutil.Process] = {}
        root = self._root(node)
        if root is not None:
            found[root.pid] = root
            with contextlib.suppress(psutil.Error):
                found.update((c.pid, c) for c in root.children(recursive=True))
        # The session id is the pid of the `ray start` we started; a process in that session
        # that is older than it belongs to an earlier owner of that pid, not to this node.
        mine = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
        for p in psutil.process_iter(["create_time"]):
            if p.pid in found or p.pid in mine:
                continue
            with contextlib.suppress(psutil.Error, OSError):
                started = p.info["create_time"] or 0
                if os.getsid(p.pid) == node.pid and started >= node.create_time - 0.01:
                    found[p.pid] = p
        return [p for p in found.values() if _is_running(p)]

    def _root(self, node: NodeState) -> psutil.Process | None:
        """The node's `ray start` process, if it is still the process we started."""
        try:
            proc = psutil.Process(node.pid)
            return proc if abs(proc.create_time() - node.create_time) < 0.01 else None
        except psutil.Error:
            return None

    def _root_alive(self, node: NodeState) -> bool:
        root = self._root(node)
        return root is not None and _is_running(root)

    def _reap(self) -> None:
        """Collect the exit status of our own dead `ray start` children (no zombies left)."""
        for proc in self._popens:
            proc.poll()

    def _save(self) -> None:
        write_state(self.state)


def _signal_all(procs: list[psutil.Process], sig: signal.Signals) -> None:
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.send_signal(sig)


def _wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait up to `timeout` s for `procs` to end; return those still running.

    A zombie counts as ended: after `stop` from another process, the `ray start` processes stay
    zombies until the process that started them reaps them, which psutil.wait_procs would await.
    """
    deadline = time.monotonic() + timeout
    while True:
        left = [p for p in procs if _is_running(p)]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.1)


def _is_running(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
