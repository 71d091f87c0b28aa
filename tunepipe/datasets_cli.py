"""`tunepipe datasets`: make the case study's synthetic faces, turn a Kaggle CSV into Parquet."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

datasets_app = typer.Typer(
    no_args_is_help=True, help="Data sets for examples: make synthetic ones, convert CSVs."
)


class Kind(str, Enum):
    keypoints = "keypoints"


@datasets_app.command("make")
def make(
    kind: Annotated[Kind, typer.Argument(help="which data set (keypoints: grey faces)")],
    out: Annotated[Path, typer.Option(help="the CSV to write (Kaggle facial-keypoints format)")],
    n: Annotated[int, typer.Option(help="rows (the real set has 7049)", min=1)] = 7049,
    size: Annotated[int, typer.Option(help="image side in pixels (the real set: 96)", min=8)] = 96,
    seed: Annotated[int, typer.Option(help="generator seed", min=0)] = 0,
) -> None:
    """Draw N synthetic faces with the 15 keypoints, about 70% of rows missing some."""
    import numpy as np

    from tunepipe.data.faces import make_faces
    from tunepipe.data.keypoints import write_kaggle_csv

    del kind  # one kind so far; the argument keeps room for more
    images, coords = make_faces(n, size, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_kaggle_csv(out, images, coords)
    complete = int((~np.isnan(coords).any(axis=1)).sum())
    typer.echo(f"{out}: {n} faces of {size}x{size}, {complete} with all 15 keypoints")


@datasets_app.command("import")
def import_keypoints(
    csv: Annotated[Path, typer.Argument(help="a Kaggle facial-keypoints CSV (training.csv)")],
    out: Annotated[Path, typer.Option(help="the Parquet file to write")],
) -> None:
    """Read a facial-keypoints CSV (30 coordinates + Image) into Parquet (column `image`)."""
    from tunepipe.data.keypoints import to_parquet

    table = to_parquet(csv, out)
    typer.echo(f"{out}: {table.num_rows} rows, {table.num_columns} columns")
