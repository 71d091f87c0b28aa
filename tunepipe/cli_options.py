"""Command-line arguments and options several `tunepipe` commands share (Typer annotations)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

StudyArg = Annotated[Path, typer.Argument(help="the study file (YAML)", show_default=False)]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="KEY=VALUE",
        help="override a study key, dotted, with a YAML value (repeatable): "
        "--set scheduler.max_epochs=3",
        show_default=False,
    ),
]
SharedStorage = Annotated[
    bool,
    typer.Option(
        "--shared-storage",
        envvar="TUNEPIPE_SHARED_STORAGE",
        help="the local --storage path is a mount (NFS) every node of the cluster sees",
    ),
]
AddressOpt = Annotated[
    str | None,
    typer.Option(help="a Ray cluster to join (as ray.init takes it); default: an embedded Ray"),
]
