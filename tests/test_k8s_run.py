"""The rendered RayJob runs: its head and worker started as KubeRay starts them, its entrypoint
submitted as KubeRay's submitter does, on this machine (private netns, token on):

unshare -rn sh -c 'ip link set lo up && python -m pytest -m cluster tests/test_k8s_run.py'

What the test takes from the manifests, unchanged: each group's rayStartParams, the resources
KubeRay turns into --num-cpus/--num-gpus/--memory, the containers' env, the image's ENV
(cluster/Dockerfile), the ConfigMap's study at the path the head mounts it, the entrypoint.
Each adaptation one host forces is in ADAPTATIONS, and nothing else is changed.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest
import yaml
from conftest_cluster import private_network_problem

from tunepipe.engine.auth import auth_headers, ensure_token
from tunepipe.engine.cluster_nodes import HEAD_PORTS, NODE_PORTS, free_ports
from tunepipe.engine.cluster_state import ClusterError, NodeState
from tunepipe.engine.local_cluster import LocalCluster
from tunepipe.k8s import manifests as m
from tunepipe.k8s.render import render_study

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[1]
ADAPTATIONS = {
    "node-ip": "--node-ip-address=127.0.0.1: pods have an IP each, here every node is 127.0.0.1",
    "ports": "every port a node listens on is a free one (pods don't share ports, nodes here do)",
    "head-address": "workers join 127.0.0.1:<gcs port>, not the head Service's DNS name",
    "temp-dir": "--temp-dir of its own per node (a pod has its own /tmp/ray)",
    "object-store": "--object-store-memory=100MB (Ray would size it from this host's memory)",
    "mounts": f"{m.STUDY_MOUNT} and {m.SHARED_MOUNT} map to temp folders; HOME (/home/ray in "
    "the image) too; paths in env and entrypoint rewritten the same way",
    "token": "RAY_AUTH_MODE=token and RAY_AUTH_TOKEN (the Secret's auth_token) set in head, "
    "worker and submitter env, as KubeRay's authOptions {mode: token} injects them",
    "python": "this checkout's Python and tunepipe instead of the image's (PATH, PYTHONPATH)",
    "fast-stop": "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S=0 so the nodes stop in seconds",
    "not-run": "no autoscaler sidecar (one worker started by hand), no cgroup limits",
}
RAY = str(Path(sys.executable).with_name("ray"))


def _tiny_study(folder: Path) -> Path:
    study = {
        "name": "k8s-tiny",
        "seed": 0,
        "data": {"source": "digits", "label": "label", "val_fraction": 0.2},
        "model": {"kind": "mlp", "depth": 1},
        "train": {"batch_size": 256},
        "search_space": {"lr": {"type": "loguniform", "low": 1e-3, "high": 1e-2}},
        "scheduler": {"kind": "fifo", "max_epochs": 2, "grace_period": 1},
        "playbook": {"sanity": False},
        "resources": {"cpu": 1},
        "num_samples": 2,
        "storage": "runs",  # a local folder: render must replace it with the shared volume
    }
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def _quantity_bytes(q: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    number, unit = re.fullmatch(r"(\d+)([KMGT]i)?", q).groups()
    return int(number) * units.get(unit, 1)


def kuberay_flags(group: dict) -> dict[str, str]:
    """The `ray start` flags KubeRay builds for a group: its rayStartParams, plus --num-cpus,
    --num-gpus and --memory from the Ray container's limits unless the params give them."""
    flags = dict(group.get("rayStartParams", {}))
    limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
    flags.setdefault("num-cpus", limits["cpu"])
    flags.setdefault("num-gpus", limits.get("nvidia.com/gpu", "0"))
    flags.setdefault("memory", str(_quantity_bytes(limits["memory"])))
    return flags


def _image_env() -> dict[str, str]:
    """The ENV of cluster/Dockerfile (the image both pods run)."""
    text = (REPO / "cluster" / "Dockerfile").read_text().replace("\\\n", " ")
    env = {}
    for line in re.findall(r"^ENV (.+)$", text, flags=re.M):
        env.update(dict(re.findall(r"(\w+)=(\S+)", line)))
    return env


class Pods:
    """Head and worker "pods" on this host: their paths, env and `ray start` processes."""

    def __init__(self, job: dict, configmap: dict, root: Path, token: str) -> None:
        self.job, self.root, self.token = job, root, token
        self.home, self.shared, self.study = root / "home", root / "shared", root / "study"
        for folder in (self.home, self.shared, self.study):
            folder.mkdir(parents=True)
        for key, text in configmap["data"].items():  # the ConfigMap volume: one file per key
            (self.study / key).write_text(text)
        # Short: Ray's Unix socket paths below the node temp dirs must fit in 107 bytes.
        self.cluster = LocalCluster(tempfile.mkdtemp(prefix="tp-k8s-", dir="/tmp"), workers=1)
        self.cluster.state.token_path = str(ensure_token(root / "probe-token", token=token))

    def host_path(self, text: str) -> str:
        """A path (or command) as the pod sees it → the same on this host (adaptation "mounts")."""
        for pod_path, here in (
            (m.STUDY_MOUNT, self.study),
            (m.SHARED_MOUNT, self.shared),
            ("/home/ray", self.home),
        ):
            text = text.replace(pod_path, str(here))
        return text

    def env(self, container: dict) -> dict[str, str]:
        # A pod's env is its image's and its manifest's: none of this test process's own.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "TUNEPIPE_"))}
        env.update({"PYTHONPATH": str(REPO), "HOME": str(self.home)})
        env.update({k: self.host_path(v) for k, v in _image_env().items()})
        env.update({e["name"]: self.host_path(e["value"]) for e in container.get("env", [])})
        env.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token})
        env["RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S"] = "0"
        return env

    def start(self, index: int, group: dict, role: str) -> None:
        flags = kuberay_flags(group)
        names = [*NODE_PORTS, *(HEAD_PORTS if role == "head" else ())]
        ports = dict(zip(names, free_ports(len(names)), strict=True))
        flags.update({k: str(v) for k, v in ports.items()})
        temp_dir = f"{self.cluster.dir}/n{index}"
        flags.update({"node-ip-address": "127.0.0.1", "temp-dir": temp_dir})
        flags["object-store-memory"] = str(100 * 1024 * 1024)
        flags.update({"min-worker-port": "0", "max-worker-port": "0"})  # the OS picks (ports)
        if role == "head":
            cmd = ["--head"]
        else:
            cmd = [f"--address=127.0.0.1:{self.cluster.state.nodes[0].ports['port']}"]
        cmd = [RAY, "start", "--block", *cmd]
        cmd += [f"--{k}={v}" for k, v in flags.items()]
        container = group["template"]["spec"]["containers"][0]
        log = f"{self.cluster.dir}/node{index}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env(container),
                start_new_session=True,
            )
        node = NodeState(index, role, int(flags["num-cpus"]), temp_dir, log, ports, proc.pid)
        node.create_time = psutil.Process(proc.pid).create_time()
        self.cluster._popens.append(proc)
        self.cluster.state.nodes.append(node)

    def submit(self, submission_id: str) -> None:
        """As KubeRay's submitter Job: `ray job submit --address http://HEAD:8265 -- ENTRYPOINT`."""
        entrypoint = self.host_path(self.job["spec"]["entrypoint"])
        env = {**self.env({}), "HOME": str(self.root / "submitter")}
        out = subprocess.run(
            [RAY, "job", "submit", "--address", self.cluster.dashboard_url]
            + ["--submission-id", submission_id, "--no-wait", "--", *entrypoint.split()],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stdout + out.stderr

    def wait(self, submission_id: str, timeout: float = 420) -> tuple[str, str]:
        from ray.job_submission import JobSubmissionClient

        client = JobSubmissionClient(
            self.cluster.dashboard_url, headers=auth_headers(self.cluster.token_path)
        )
        deadline, status = time.monotonic() + timeout, ""
        while time.monotonic() < deadline:
            status = str(client.get_job_status(submission_id).value)
            if status in {"SUCCEEDED", "FAILED", "STOPPED"}:
                break
            time.sleep(2)
        return status, client.get_job_logs(submission_id)


# Ray gives a starting node 30 s (hard-coded) to register with GCS; on a machine many test runs
# share, that can pass. Such a start is retried once, said in the output, never silently.
STARTUP_TIMEOUT = "timed out during startup"


def _start_pods(tmp_path: Path, job: dict, configmap: dict, attempt: int) -> Pods:
    pods = Pods(job, configmap, tmp_path / f"pods{attempt}", token=secrets.token_hex(32))
    spec = job["spec"]["rayClusterSpec"]
    try:
        pods.start(0, spec["headGroupSpec"], "head")
        pods.cluster.wait_ready(1, timeout=120)
        pods.start(1, spec["workerGroupSpecs"][0], "worker")
        pods.cluster.wait_ready(2, timeout=120)
    except BaseException:
        pods.cluster.stop()
        shutil.rmtree(pods.cluster.dir, ignore_errors=True)
        raise
    return pods


@pytest.fixture
def pods(tmp_path):
    problem = private_network_problem()
    if problem:
        pytest.fail(problem, pytrace=False)
    configmap, job = yaml.safe_load_all(render_study(_tiny_study(tmp_path), workers=1))
    try:
        pods = _start_pods(tmp_path, job, configmap, 0)
    except ClusterError as exc:
        if STARTUP_TIMEOUT not in str(exc):
            raise
        print(f"retrying the cluster start once: {str(exc).splitlines()[0]} ({STARTUP_TIMEOUT})")
        pods = _start_pods(tmp_path, job, configmap, 1)
    try:
        yield pods
    finally:
        pods.cluster.stop()
        shutil.rmtree(pods.cluster.dir, ignore_errors=True)


def test_the_rendered_rayjob_runs_and_a_retried_job_resumes(pods):
    print("single-host adaptations:\n" + "\n".join(f"  {k}: {v}" for k, v in ADAPTATIONS.items()))
    head = pods.job["spec"]["rayClusterSpec"]["headGroupSpec"]
    assert kuberay_flags(head)["num-cpus"] == "0"  # so every trial ran on the worker
    pods.submit("k8s-first")
    status, logs = pods.wait("k8s-first")
    assert status == "SUCCEEDED", logs[-4000:]
    run = pods.shared / "runs" / "k8s-tiny"  # the manifests' storage: the shared volume
    assert pq.read_table(run / "results.parquet").num_rows == 2
    assert (run / "summary.json").is_file() and "best trial" in logs
    # The driver joined with the token KubeRay injected, kept in the image's token file path.
    token_file = pods.home / ".tunepipe" / "ray_auth_token"
    assert token_file.read_text() == pods.token
    # A retried RayJob (backoffLimit) runs the same entrypoint again on the same storage; a
    # fresh `tunepipe run` would refuse the folder (RunDirError), so success means it resumed.
    pods.submit("k8s-retry")
    status, logs = pods.wait("k8s-retry")
    assert status == "SUCCEEDED", logs[-4000:]
    assert pq.read_table(run / "results.parquet").num_rows == 2
