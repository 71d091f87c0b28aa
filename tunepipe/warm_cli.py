"""`tunepipe up` / `tunepipe down`: the warm local Ray (tunepipe.engine.warm), as CLI commands."""

from __future__ import annotations

from typing import Annotated

import typer


def up(
    num_cpus: Annotated[
        int | None, typer.Option(help="CPUs the warm Ray offers trials (default: all)", min=1)
    ] = None,
) -> None:
    """Start a local Ray that stays: `tunepipe run` uses it until `tunepipe down`."""
    from tunepipe.engine.warm import up as start

    warm, started = start(num_cpus)
    verb = "started" if started else "already up"
    typer.echo(
        f"warm Ray {verb}: {warm.address}, {warm.num_cpus:g} CPUs, dashboard {warm.dashboard}"
        f" (holder pid {warm.pid}); `tunepipe run` uses it, `tunepipe down` stops it"
    )


def down() -> None:
    """Stop the local Ray that `tunepipe up` started."""
    from tunepipe.engine.warm import down as stop

    warm = stop()
    typer.echo(f"warm Ray at {warm.address} stopped" if warm else "no warm Ray was up")
