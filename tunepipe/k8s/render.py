"""`tunepipe k8s render`: one study file → a ready ConfigMap + RayJob for `kubectl apply -f -`."""

from __future__ import annotations

from pathlib import Path

from tunepipe.config import BUILTIN_DATA, StudyConfig
from tunepipe.errors import TunepipeError
from tunepipe.k8s import manifests as m


class RenderError(TunepipeError):
    """The study or the options cannot become a RayJob that would run on the cluster."""


def render_study(
    study_path: Path,
    *,
    image: str | None = None,
    gpus: int | None = None,
    workers: int = 4,
    namespace: str | None = None,
    storage: str | None = None,
) -> str:
    """The YAML of the study's ConfigMap and RayJob (a cluster of its own, shut down after).

    The study's per-trial resources size the worker group; `gpus` is per worker (default: what
    one trial asks for). Results go to `storage`, by default the shared volume every node mounts:
    a study's own local `storage:` would be a folder on whichever pod runs the driver.
    """
    from tunepipe.study import load_study

    study = load_study(study_path)
    problems = _unreachable_files(study, study_path) + _sizing_problems(study, gpus)
    if problems:
        raise RenderError(problems, source=str(study_path))
    shape = m.size_workers(study.resources.cpu, study.resources.gpu, gpus, workers)
    opts = m.ClusterOptions(
        image=image or (m.GPU_IMAGE if shape.gpus else m.IMAGE),
        worker=shape,
        storage=storage or m.DEFAULT_STORAGE,
        namespace=namespace,
    )
    return m.to_yaml(m.rayjob(m.job_name(study.name), study_path.read_text(), opts))


def render_cluster(
    *,
    image: str | None = None,
    gpus: int = 0,
    workers: int = 4,
    namespace: str | None = None,
    storage: str | None = None,
) -> str:
    """The YAML of a long-lived RayCluster (and the shared volume's claim, when it uses one)."""
    shape = m.size_workers(1, gpus, gpus, workers)
    opts = m.ClusterOptions(
        image=image or (m.GPU_IMAGE if gpus else m.IMAGE),
        worker=shape,
        storage=storage or m.DEFAULT_STORAGE,
        namespace=namespace,
    )
    docs = [m.shared_volume_claim(namespace)] if opts.uses_volume else []
    return m.to_yaml([*docs, m.raycluster(opts)])


def _unreachable_files(study: StudyConfig, study_path: Path) -> list[str]:
    """Local paths the study names: only the study file itself travels (in the ConfigMap)."""
    found = []
    source = study.data.source if study.data else None
    on_volume = bool(source) and source.startswith(m.SHARED_MOUNT + "/")
    if source and source not in BUILTIN_DATA and "://" not in source and not on_volume:
        found.append(
            f"{study_path}: data.source {source!r} is a file on this machine, which the cluster's "
            f"pods cannot read; put it in object storage (s3://bucket/data.parquet) or on the "
            f"shared volume ({m.SHARED_MOUNT}/data/...) and give that URI or path"
        )
    if study.code_dir:
        found.append(
            f"{study_path}: code_dir {study.code_dir!r} is a folder on this machine; build your "
            "code into the image (cluster/Dockerfile) and drop code_dir, or use `tunepipe submit`"
            ", which uploads it"
        )
    warm = study.warm_start
    if warm and "://" not in warm and not warm.startswith(m.SHARED_MOUNT + "/"):
        found.append(
            f"{study_path}: warm_start {warm!r} is a run folder on this machine, which the "
            f"cluster's pods cannot read; give its path on the shared volume ({m.SHARED_MOUNT}/"
            "runs/...) or a URI every node opens"
        )
    return found


def _sizing_problems(study: StudyConfig, gpus: int | None) -> list[str]:
    need = study.resources.gpu
    if gpus is None or (gpus == 0 and need == 0):
        return []
    if need == 0:
        return [
            f"--gpus {gpus}: the study's trials ask for no GPU (resources.gpu: 0), so GPU "
            "workers would sit idle; set resources.gpu in the study (e.g. 1, or 0.5 to pack two "
            "trials on a GPU) or drop --gpus"
        ]
    if need > gpus:
        return [
            f"--gpus {gpus}: one trial asks for resources.gpu {need:g}, more than a worker has, "
            f"so no trial could start; give --gpus {int(-(-need // 1))} or more"
        ]
    return []
