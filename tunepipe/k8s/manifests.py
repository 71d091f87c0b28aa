"""KubeRay manifests for tunepipe: a RayCluster spec, the RayJob that runs one study, its ConfigMap.

Plain dicts built from a few sizing facts; nothing here imports Ray or torch, so `tunepipe k8s
render` is instant. k8s/base/ is this module's output for examples/digits.yaml, committed
(tests/test_k8s_manifests.py checks it is current), and the overlays patch it.

KubeRay field names: ray-operator/config/crd/bases/ray.io_{rayclusters,rayjobs}.yaml (v1.7).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import yaml

# The image cluster/Dockerfile builds (its tag is pyproject's version) and the Ray it is based on;
# tests/test_k8s_manifests.py checks all three against pyproject.toml and the Dockerfile.
IMAGE = "tunepipe:0.1.0"
GPU_IMAGE = IMAGE + "-gpu"
RAY_VERSION = "2.60.0"
PYTHON_TAG = "py311"

STUDY_MOUNT = "/home/ray/study"  # the study ConfigMap, on the head (the job's driver runs there)
STUDY_KEY = "study.yaml"
SHARED_MOUNT = "/mnt/tunepipe"  # the ReadWriteMany volume, same path on every node
DEFAULT_STORAGE = f"{SHARED_MOUNT}/runs"
PVC_NAME = "tunepipe-runs"
OBJECT_STORAGE_SECRET = "tunepipe-object-storage"  # AWS_*/GOOGLE_* etc. for a storage URI
METRICS_PORT = 8080  # Ray's metrics export port; the PodMonitor scrapes the port named "metrics"
IDLE_TIMEOUT_S = 300  # the autoscaler removes a worker idle this long (Tune between studies)
# A RayJob's lifetime: the cluster goes 10 minutes after the job ends (time to look at the
# dashboard), a study running over a day is stopped, and a failed job is retried twice.
TTL_AFTER_FINISHED_S = 600
ACTIVE_DEADLINE_S = 24 * 3600
BACKOFF_LIMIT = 2


@dataclass(frozen=True)
class WorkerShape:
    """One Ray worker pod: what it requests (= its limits: Guaranteed QoS, as KubeRay advises)."""

    cpus: int = 4
    memory_gib: int = 8
    gpus: int = 0
    max_workers: int = 4


@dataclass(frozen=True)
class ClusterOptions:
    """Everything a rendered cluster depends on besides the study."""

    image: str = IMAGE
    worker: WorkerShape = WorkerShape()
    storage: str = DEFAULT_STORAGE
    namespace: str | None = None

    @property
    def uses_volume(self) -> bool:
        """Whether storage is on the shared volume (else a URI: object storage, creds in env)."""
        return "://" not in self.storage


def head_group(opts: ClusterOptions) -> dict:
    """The head: no trials (num-cpus 0), the dashboard, the job's driver and the study file."""
    container = _container("ray-head", opts, cpus=2, memory_gib=8, gpus=0)
    container["ports"] = [
        {"containerPort": 6379, "name": "gcs-server"},
        {"containerPort": 8265, "name": "dashboard"},
        {"containerPort": 10001, "name": "client"},
        {"containerPort": METRICS_PORT, "name": "metrics"},
        # The autoscaler's and the dashboard's own exporters (KubeRay's config/prometheus names).
        {"containerPort": 44217, "name": "as-metrics"},
        {"containerPort": 44227, "name": "dash-metrics"},
    ]
    container["volumeMounts"].append({"name": "study", "mountPath": STUDY_MOUNT, "readOnly": True})
    volumes = _volumes(opts) + [{"name": "study", "configMap": {"name": "tunepipe-study"}}]
    return {
        "rayStartParams": {
            "num-cpus": "0",  # trials go to workers; the head keeps GCS and the driver responsive
            "dashboard-host": "0.0.0.0",
            "metrics-export-port": str(METRICS_PORT),
        },
        "template": {"spec": {"containers": [container], "volumes": volumes}},
    }


def worker_group(opts: ClusterOptions) -> dict:
    """Workers run the trials; KubeRay turns their limits into --num-cpus/--num-gpus/--memory."""
    w = opts.worker
    container = _container("ray-worker", opts, cpus=w.cpus, memory_gib=w.memory_gib, gpus=w.gpus)
    container["ports"] = [{"containerPort": METRICS_PORT, "name": "metrics"}]
    spec: dict = {"containers": [container], "volumes": _volumes(opts)}
    if w.gpus:
        spec["tolerations"] = [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
        ]
    return {
        "groupName": "gpu" if w.gpus else "cpu",
        "replicas": 0,
        "minReplicas": 0,
        "maxReplicas": w.max_workers,
        "rayStartParams": {"metrics-export-port": str(METRICS_PORT)},
        "template": {"spec": spec},
    }


def cluster_spec(opts: ClusterOptions) -> dict:
    """A RayCluster's spec: token auth, autoscaling from zero workers, shared storage."""
    return {
        "rayVersion": RAY_VERSION,
        "authOptions": {"mode": "token"},  # the operator makes the Secret and injects the token
        "enableInTreeAutoscaling": True,
        "autoscalerOptions": {"upscalingMode": "Default", "idleTimeoutSeconds": IDLE_TIMEOUT_S},
        "headGroupSpec": head_group(opts),
        "workerGroupSpecs": [worker_group(opts)],
    }


def _container(name: str, opts: ClusterOptions, cpus: int, memory_gib: int, gpus: int) -> dict:
    amounts = {"cpu": str(cpus), "memory": f"{memory_gib}Gi"}
    if gpus:
        amounts["nvidia.com/gpu"] = str(gpus)
    env = [
        # tunepipe refuses a local storage path on a multi-host cluster unless told it is shared.
        {"name": "TUNEPIPE_SHARED_STORAGE", "value": "1" if opts.uses_volume else "0"},
        {"name": "TUNEPIPE_STORAGE", "value": opts.storage},
    ]
    container: dict = {
        "name": name,
        "image": opts.image,
        "env": env,
        "resources": {"requests": dict(amounts), "limits": dict(amounts)},
        "volumeMounts": [],
    }
    if opts.uses_volume:
        container["volumeMounts"].append({"name": "runs", "mountPath": SHARED_MOUNT})
    else:  # object storage: its credentials, from a Secret the user creates (docs/kubernetes.md)
        container["envFrom"] = [{"secretRef": {"name": OBJECT_STORAGE_SECRET, "optional": True}}]
    return container


def _volumes(opts: ClusterOptions) -> list[dict]:
    if not opts.uses_volume:
        return []
    return [{"name": "runs", "persistentVolumeClaim": {"claimName": PVC_NAME}}]


def raycluster(opts: ClusterOptions, name: str = "tunepipe") -> dict:
    """A long-lived RayCluster for `tunepipe submit` through a port-forward."""
    spec = cluster_spec(opts)
    # No study file on a long-lived cluster: `tunepipe submit` uploads the study with the job.
    head = spec["headGroupSpec"]["template"]["spec"]
    head["volumes"] = [v for v in head["volumes"] if v["name"] != "study"]
    mounts = head["containers"][0]["volumeMounts"]
    head["containers"][0]["volumeMounts"] = [m for m in mounts if m["name"] != "study"]
    return _object("ray.io/v1", "RayCluster", name, opts.namespace, spec)


def shared_volume_claim(namespace: str | None = None, size: str = "50Gi") -> dict:
    """The ReadWriteMany claim every node mounts at SHARED_MOUNT (needs an RWX storage class)."""
    spec = {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": size}}}
    return _object("v1", "PersistentVolumeClaim", PVC_NAME, namespace, spec)


def entrypoint(storage: str) -> str:
    """The job's command: run the study, or resume it when the run folder already holds it."""
    return f"tunepipe k8s run {STUDY_MOUNT}/{STUDY_KEY} --storage {storage}"


def rayjob(job_name: str, study_text: str, opts: ClusterOptions) -> list[dict]:
    """The ConfigMap holding the study and the RayJob that runs it on a cluster of its own."""
    config_name = f"{job_name}-study"
    cluster = cluster_spec(opts)
    for volume in cluster["headGroupSpec"]["template"]["spec"]["volumes"]:
        if volume["name"] == "study":
            volume["configMap"]["name"] = config_name
    spec = {
        "entrypoint": entrypoint(opts.storage),
        "shutdownAfterJobFinishes": True,
        "ttlSecondsAfterFinished": TTL_AFTER_FINISHED_S,
        "activeDeadlineSeconds": ACTIVE_DEADLINE_S,
        "backoffLimit": BACKOFF_LIMIT,
        "rayClusterSpec": cluster,
    }
    configmap = _object("v1", "ConfigMap", config_name, opts.namespace, None)
    del configmap["spec"]
    configmap["data"] = {STUDY_KEY: study_text}
    return [configmap, _object("ray.io/v1", "RayJob", job_name, opts.namespace, spec)]


def job_name(study_name: str) -> str:
    """A DNS-1123 name for the study's RayJob, short enough for KubeRay's derived names."""
    slug = re.sub(r"[^a-z0-9-]+", "-", study_name.lower()).strip("-")
    return f"tunepipe-{slug}"[:40].rstrip("-")


def size_workers(
    cpu_per_trial: float, gpu_per_trial: float, gpus: int | None, workers: int
) -> WorkerShape:
    """The worker pod for a study's per-trial resources (render refuses what cannot fit).

    GPU workers get the GPUs asked for (default: what one trial needs) and CPUs for every trial
    that fits on them; CPU workers get 4 CPUs, or more when one trial needs more.
    """
    if gpus is None:
        gpus = math.ceil(gpu_per_trial)
    if gpus:
        trials = max(1, math.floor(gpus / gpu_per_trial)) if gpu_per_trial else 1
        cpus = max(4, math.ceil(cpu_per_trial * trials))
        return WorkerShape(cpus=cpus, memory_gib=4 * cpus, gpus=gpus, max_workers=workers)
    cpus = max(4, math.ceil(cpu_per_trial))
    return WorkerShape(cpus=cpus, memory_gib=2 * cpus, gpus=0, max_workers=workers)


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the study file) as readable `|` blocks, not one quoted line."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(documents: list[dict]) -> str:
    """The documents as one multi-document YAML stream, as `kubectl apply -f -` takes it."""
    return yaml.dump_all(documents, Dumper=_Dumper, sort_keys=False, default_flow_style=False)


def _object(api: str, kind: str, name: str, namespace: str | None, spec: dict | None) -> dict:
    meta: dict = {"name": name, "labels": {"app.kubernetes.io/part-of": "tunepipe"}}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": api, "kind": kind, "metadata": meta, "spec": spec}
