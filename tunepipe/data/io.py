"""Opening a study's data with pyarrow.dataset: local paths, URIs, built-in sets."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from tunepipe.config import BUILTIN_DATA, DataConfig
from tunepipe.errors import DataError

BUILTIN_DIR = Path(__file__).parent / "builtin"
FORMATS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".feather": "feather",
    ".arrow": "feather",
    ".ipc": "feather",
    ".csv": "csv",
}


def resolve_source(source: str, base_dir: Path | None = None) -> str:
    """A built-in name becomes its shipped file; a relative path is read from the study folder."""
    if source in BUILTIN_DATA:
        return str(BUILTIN_DIR / f"{source}.parquet")
    if "://" in source or Path(source).is_absolute() or base_dir is None:
        return source
    return str((base_dir / source).resolve())


def read_table(cfg: DataConfig, base_dir: Path | None = None) -> pa.Table:
    """Read the columns the study uses, once, into one Arrow table."""
    import pyarrow.dataset as ds

    source = resolve_source(cfg.source, base_dir)
    fmt = cfg.format or _infer_format(source)
    try:
        dataset = ds.dataset(source, format="ipc" if fmt == "feather" else fmt)
    except FileNotFoundError:
        raise DataError(
            f"data.source: {source} does not exist; give a file, folder or URI "
            f"pyarrow can open, or a built-in set ({', '.join(BUILTIN_DATA)})"
        ) from None
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"data.source: cannot read {source} as {fmt}: {exc}") from None
    names = dataset.schema.names
    wanted = [*(cfg.features or []), *([cfg.image_column] if cfg.image_column else []), *cfg.labels]
    missing = [c for c in wanted if c not in names]
    if missing:
        raise DataError(
            [f"data: column {c!r} is not in {source}{_near(c, names)}" for c in missing]
            + [
                f"data: the columns there are: {', '.join(names[:30])}"
                + (" ..." if len(names) > 30 else "")
            ]
        )
    columns = wanted if (cfg.features or cfg.image_column) else None
    try:
        return dataset.to_table(columns=columns)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"data.source: cannot read {source}: {exc}") from None


def _infer_format(source: str) -> str:
    suffix = Path(source.split("?")[0]).suffix.lower()
    if suffix in FORMATS:
        return FORMATS[suffix]
    if suffix == "":
        return "parquet"  # a folder of Parquet files is pyarrow's usual dataset
    raise DataError(
        f"data.source: cannot tell the format of {source!r} from its extension; "
        "set data.format to parquet, feather or csv"
    )


def _near(name: str, names: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, names, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
