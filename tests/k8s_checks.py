"""Checking tunepipe's Kubernetes manifests offline (helpers for tests/test_k8s_*.py).

Three layers, each a list of "where: what" problems (empty when fine):
- `crd_problems`: RayCluster/RayJob against KubeRay's own CRDs (the v1 openAPIV3Schema), read from
  TUNEPIPE_K8S_SCHEMAS or a `shared/k8s-schemas` folder above the repository, never copied here.
  The API server rejects unknown fields wherever the schema does not preserve them, so every
  object schema that lists properties gets additionalProperties: false here, as the server does.
- `core_problems`: core kinds (ConfigMap, PersistentVolumeClaim, ...) against the strict schemas
  of the kubernetes-validate package.
- `own_problems`: what tunepipe itself requires of a cluster (no trials on the head, token auth,
  real worker requests, a RayJob that cleans up and gives up), no schema needed.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SCHEMAS_ENV = "TUNEPIPE_K8S_SCHEMAS"
CRD_FILES = {"RayCluster": "ray.io_rayclusters.yaml", "RayJob": "ray.io_rayjobs.yaml"}
KUBERAY_KINDS = set(CRD_FILES)
# prometheus-operator's CRDs are not in shared/k8s-schemas: PodMonitors get own_problems only.
UNCHECKED_KINDS = {"PodMonitor"}
DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def schemas_dir() -> Path | None:
    """The folder holding kuberay/ray.io_*.yaml, or None when it is nowhere to be found."""
    given = os.environ.get(SCHEMAS_ENV)
    candidates = [Path(given)] if given else [p / "shared" / "k8s-schemas" for p in REPO.parents]
    for folder in candidates:
        if all((folder / "kuberay" / f).is_file() for f in CRD_FILES.values()):
            return folder
    return None


def schemas_missing_reason() -> str:
    return (
        "KubeRay CRDs not found: set TUNEPIPE_K8S_SCHEMAS to a folder holding "
        f"kuberay/{' and kuberay/'.join(CRD_FILES.values())} (CI has ../shared/k8s-schemas); "
        "the KubeRay schema checks did NOT run, the kustomize, core-kind and tunepipe checks did"
    )


def kustomize(folder: Path) -> list[dict]:
    """`kubectl kustomize FOLDER`, parsed."""
    out = subprocess.run(
        ["kubectl", "kustomize", str(folder)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, f"kubectl kustomize {folder} failed:\n{out.stderr}"
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@functools.cache
def _crd_validator(kind: str):
    import jsonschema

    folder = schemas_dir()
    assert folder is not None, schemas_missing_reason()
    # libyaml's loader: the pure-Python one takes ~15 s per CRD on a busy 2-core machine.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crd = yaml.load((folder / "kuberay" / CRD_FILES[kind]).read_text(), Loader=loader)
    (v1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = _closed(v1["schema"]["openAPIV3Schema"])
    return jsonschema.Draft7Validator(schema)


def _closed(schema: dict) -> dict:
    """The schema with unknown fields refused wherever the API server refuses them."""
    out = dict(schema)
    if "properties" in out:
        out["properties"] = {k: _closed(v) for k, v in out["properties"].items()}
        if "additionalProperties" not in out and not out.get(
            "x-kubernetes-preserve-unknown-fields"
        ):
            out["additionalProperties"] = False
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = _closed(out["additionalProperties"])
    if isinstance(out.get("items"), dict):
        out["items"] = _closed(out["items"])
    for key in ("anyOf", "allOf", "oneOf"):
        if key in out:
            out[key] = [_closed(s) for s in out[key]]
    return out


def crd_problems(doc: dict) -> list[str]:
    """Where `doc` (a RayCluster or RayJob) breaks KubeRay's v1 CRD schema."""
    errors = _crd_validator(doc["kind"]).iter_errors(doc)
    return sorted(f"{_where(doc, e.absolute_path)}: {e.message}" for e in errors)


def core_problems(doc: dict) -> list[str]:
    """Where a core-kind `doc` breaks the strict Kubernetes schema (kubernetes-validate)."""
    import kubernetes_validate as kv

    try:
        kv.validate(doc, kv.latest_version(), strict=True)
    except kv.ValidationError as e:
        return [f"{_where(doc, e.path)}: {e.message}"]
    return []


def own_problems(doc: dict) -> list[str]:
    """What tunepipe requires of its own objects, beyond any schema."""
    name = doc.get("metadata", {}).get("name", "")
    where = f"{doc.get('kind')}/{name}"
    problems = [] if DNS_1123.match(name) else [f"{where}: name {name!r} is not DNS-1123"]
    if doc.get("kind") == "RayCluster":
        problems += _cluster_problems(where, doc["spec"])
    elif doc.get("kind") == "RayJob":
        spec = doc["spec"]
        for field in ("shutdownAfterJobFinishes", "ttlSecondsAfterFinished"):
            if not spec.get(field):
                problems.append(f"{where}: spec.{field} must be set (the cluster must go away)")
        for field in ("activeDeadlineSeconds", "backoffLimit", "entrypoint", "rayClusterSpec"):
            if field not in spec:
                problems.append(f"{where}: spec.{field} is missing")
        if "tunepipe k8s run" not in spec.get("entrypoint", ""):
            problems.append(f"{where}: the entrypoint must be `tunepipe k8s run` (it resumes)")
        problems += _cluster_problems(where + " rayClusterSpec", spec.get("rayClusterSpec", {}))
    return problems


def _cluster_problems(where: str, spec: dict) -> list[str]:
    problems = []
    head = spec.get("headGroupSpec", {})
    if head.get("rayStartParams", {}).get("num-cpus") != "0":
        problems.append(f'{where}: headGroupSpec.rayStartParams num-cpus must be "0"')
    if spec.get("authOptions", {}).get("mode") != "token":
        problems.append(f"{where}: authOptions.mode must be token")
    if not spec.get("enableInTreeAutoscaling"):
        problems.append(f"{where}: enableInTreeAutoscaling must be true")
    for i, group in enumerate(spec.get("workerGroupSpecs", [])):
        containers = group.get("template", {}).get("spec", {}).get("containers", [])
        requests = containers[0].get("resources", {}).get("requests", {}) if containers else {}
        if not {"cpu", "memory"} <= set(requests):
            problems.append(f"{where}: workerGroupSpecs[{i}] must request cpu and memory")
        if group.get("minReplicas") != 0:
            problems.append(f"{where}: workerGroupSpecs[{i}].minReplicas must be 0")
    return problems


def all_problems(docs: list[dict], with_crds: bool) -> list[str]:
    """Every problem of every document, by the checks that apply to its kind."""
    problems = []
    for doc in docs:
        problems += own_problems(doc)
        if doc["kind"] in KUBERAY_KINDS:
            problems += crd_problems(doc) if with_crds else []
        elif doc["kind"] not in UNCHECKED_KINDS:
            problems += core_problems(doc)
    return problems


def _where(doc: dict, path) -> str:
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')} " + ".".join(
        f"[{p}]" if isinstance(p, int) else str(p) for p in path
    )
