"""A study that asks for a GPU never runs silently on CPUs (issue 18).

Ray would otherwise leave GPU trials pending forever on a cluster without GPUs, or, on a node
where CUDA is missing, the trainable would fall back to the CPU. Before any trial starts, the
request is compared with the GPUs the cluster has and, where it has an autoscaler, the GPUs its
node types could add.
"""

from __future__ import annotations

from typing import Any

from tunepipe.config import StudyConfig
from tunepipe.errors import TunepipeError


class ResourceError(TunepipeError):
    """The cluster cannot give the study what it asks for (CLI exit code 2)."""


def gpu_request_problem(
    requested: float, cluster_gpus: float, autoscaler_gpus: float | None
) -> str | None:
    """Why a per-trial GPU request can't be met, or None. `autoscaler_gpus` is the most GPUs
    the autoscaler's node types could bring (None: no autoscaler)."""
    if requested <= 0:
        return None
    reachable = max(cluster_gpus, autoscaler_gpus or 0)
    if reachable >= requested:
        return None
    where = (
        f"the cluster has {cluster_gpus:g} GPU(s) and its autoscaler's node types "
        f"{autoscaler_gpus:g}"
        if autoscaler_gpus is not None
        else f"the cluster has {cluster_gpus:g} GPU(s) and no autoscaler to add any"
    )
    return (
        f"resources.gpu: each trial asks for {requested:g} GPU, but {where}; no trial could "
        "start. Run on a cluster with GPUs (--address), add a GPU worker group, or set "
        "resources.gpu: 0 to train on CPUs"
    )


def check_gpu_request(study: StudyConfig) -> None:
    """Raise ResourceError before any trial when the connected Ray can't give the GPUs."""
    if study.resources.gpu <= 0:
        return
    import ray

    problem = gpu_request_problem(
        study.resources.gpu, float(ray.cluster_resources().get("GPU", 0)), autoscaler_gpus()
    )
    if problem:
        raise ResourceError(problem)


def autoscaler_gpus() -> float | None:
    """The GPUs the autoscaler's node types could add (KubeRay and the cluster launcher publish
    them to the GCS), None where no autoscaler published any.

    Ray 2.60 keeps this behind `ray._private.state.state.get_max_resources_from_cluster_config`
    (no public API); tests/test_gpu_fast_path.py fails loudly if it moves.
    """
    from ray._private.state import state

    found: Any = state.get_max_resources_from_cluster_config()
    if not found:
        return None
    return float(found.get("GPU", 0))


def gpu_batch_notes(study: StudyConfig) -> list[str]:
    """B1 on a GPU: batch sizes in multiples of 32 fill its tensor cores' tiles (a note, since
    another size still trains correctly)."""
    if study.resources.gpu <= 0:
        return []
    value = study.search_space.get("batch_size", study.train.batch_size)
    values = getattr(value, "values", None)  # a choice or grid; ranges are left to the user
    values = values if values is not None else [value] if isinstance(value, int) else []
    odd = sorted({int(b) for b in values if int(b) % 32})
    if not odd:
        return []
    return [
        f"note: batch size(s) {', '.join(map(str, odd))} are not multiples of 32; on a GPU, "
        "multiples of 32 use its matrix units fully (playbook B1)"
    ]
