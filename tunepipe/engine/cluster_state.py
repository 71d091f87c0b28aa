"""What a local cluster writes down about itself: `cluster.json`, read back by `attach`.

Another process (the `cluster/local_cluster.py stop` script, a test's teardown) needs the pids,
ports and token path of a cluster it did not start; this module is that record and nothing else.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

STATE_FILE = "cluster.json"


class ClusterError(RuntimeError):
    """The local cluster could not be started, reached or stopped."""


@dataclass
class NodeState:
    """One `ray start --block` process and what identifies the processes it spawned."""

    index: int
    role: str  # "head" or "worker"
    num_cpus: int
    temp_dir: str
    log: str
    ports: dict[str, int]
    pid: int = 0
    create_time: float = 0.0  # with pid, tells our `ray start` from a later process reusing pid
    killed: bool = False


@dataclass
class ClusterState:
    """Everything another process needs to reach or stop the cluster; written as cluster.json."""

    dir: str
    token_path: str
    nodes: list[NodeState] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.nodes[0].ports['port']}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.nodes[0].ports['dashboard-port']}"


def read_state(folder: Path) -> ClusterState:
    """The state a cluster in `folder` wrote; ClusterError naming the fix when there is none."""
    state_file = folder / STATE_FILE
    if not state_file.is_file():
        raise ClusterError(
            f"No local cluster in {folder}: {STATE_FILE} is missing. Start one "
            f"with `python cluster/local_cluster.py start --dir {folder}`."
        )
    raw = json.loads(state_file.read_text())
    nodes = [NodeState(**n) for n in raw.pop("nodes")]
    return ClusterState(**raw, nodes=nodes)


def write_state(state: ClusterState) -> None:
    """Replace `cluster.json` atomically, so a reader never sees half a file."""
    folder = Path(state.dir)
    tmp = folder / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2))
    tmp.replace(folder / STATE_FILE)
