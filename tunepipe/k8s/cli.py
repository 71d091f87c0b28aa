"""`tunepipe k8s ...`: KubeRay manifests for a study or a cluster, and the RayJob's entrypoint."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

k8s_app = typer.Typer(
    no_args_is_help=True,
    help="Kubernetes (KubeRay): render a RayJob for a study, or a RayCluster (docs/kubernetes.md).",
)

ImageOpt = Annotated[
    str | None,
    typer.Option(help="container image [tunepipe:VERSION, or tunepipe:VERSION-gpu with GPUs]"),
]
WorkersOpt = Annotated[int, typer.Option(help="most worker pods the autoscaler starts", min=1)]
NamespaceOpt = Annotated[str | None, typer.Option(help="metadata.namespace of every object")]
StorageOpt = Annotated[
    str | None,
    typer.Option(
        help="where run folders go: a URI (s3://bucket/runs; credentials from the "
        "tunepipe-object-storage Secret) [the shared volume: /mnt/tunepipe/runs]"
    ),
]


@k8s_app.command()
def render(
    study: Annotated[Path, typer.Argument(help="the study file (YAML)", show_default=False)],
    image: ImageOpt = None,
    gpus: Annotated[
        int | None, typer.Option(help="GPUs per worker [what one trial asks for]", min=0)
    ] = None,
    workers: WorkersOpt = 4,
    namespace: NamespaceOpt = None,
    storage: StorageOpt = None,
) -> None:
    """Print the study's ConfigMap and a RayJob that runs it: `... | kubectl apply -f -`."""
    from tunepipe.k8s.render import render_study

    typer.echo(
        render_study(
            study, image=image, gpus=gpus, workers=workers, namespace=namespace, storage=storage
        ),
        nl=False,
    )


@k8s_app.command()
def cluster(
    image: ImageOpt = None,
    gpus: Annotated[int, typer.Option(help="GPUs per worker (0: CPU workers)", min=0)] = 0,
    workers: WorkersOpt = 4,
    namespace: NamespaceOpt = None,
    storage: StorageOpt = None,
) -> None:
    """Print a long-lived RayCluster (and its shared volume claim) for `tunepipe submit`."""
    from tunepipe.k8s.render import render_cluster

    typer.echo(
        render_cluster(
            image=image, gpus=gpus, workers=workers, namespace=namespace, storage=storage
        ),
        nl=False,
    )


@k8s_app.command("run")
def run_job(
    study: Annotated[Path, typer.Argument(help="the study file (YAML)", show_default=False)],
    storage: Annotated[
        str, typer.Option(envvar="TUNEPIPE_STORAGE", help="folder or URI for run folders")
    ],
    shared_storage: Annotated[
        bool,
        typer.Option(
            "--shared-storage",
            envvar="TUNEPIPE_SHARED_STORAGE",
            help="the local --storage path is a volume every node mounts",
        ),
    ] = False,
) -> None:
    """The RayJob's entrypoint: run the study, or resume it if the run folder holds it already."""
    from tunepipe.cli import _print_outcome
    from tunepipe.k8s.entry import run_or_resume

    _print_outcome(run_or_resume(study, storage, shared_storage=shared_storage))
