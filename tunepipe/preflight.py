"""What `tunepipe validate` checks beyond the study file itself: its data and its code.

`validate` must refuse what `run` would refuse or crash on later, and stay fast (no torch, no
Ray, no rows read): the data source is opened for its schema only, and a `trainable:` or
`model.factory` is found on disk (its module's file, parsed, never run) with `code_dir` and the
study's folder on the import path, as `run` puts them there. The cluster the study will later
run on is not checked (`resources.gpu: 0.25` validates on a machine without a GPU).
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path
from typing import Any

from tunepipe.config import StudyConfig

MAX_COLUMNS_SHOWN = 30


def validate_file(path: str | Path, sets: list[str] = ()) -> StudyConfig:
    """`tunepipe validate`: the study file (with `--set` overrides), then its data and code;
    raises StudyFileError listing every problem (exit 2), or returns the study."""
    from tunepipe.errors import StudyFileError
    from tunepipe.study import load_study

    study = load_study(path, sets)
    problems = input_problems(study, Path(path).resolve().parent)
    if problems:
        raise StudyFileError(problems, source=str(path))
    return study


def input_problems(study: StudyConfig, study_dir: Path) -> list[str]:
    """Every problem with the study's data and code, one line each (empty when none)."""
    problems = []
    if study.data is not None:
        problems += data_problems(study, study_dir)
    code = [("trainable", study.trainable)]
    if study.model is not None and study.model.kind == "custom":
        code.append(("model.factory", study.model.factory))
    paths = [str(study_dir)] + ([str(study_dir / study.code_dir)] if study.code_dir else [])
    for field, target in code:
        if target:
            problems += code_problems(field, target, paths)
    if study.code_dir and not (study_dir / study.code_dir).is_dir():
        problems.append(f"code_dir: {study_dir / study.code_dir} is not a folder")
    return problems


def data_problems(study: StudyConfig, study_dir: Path) -> list[str]:
    """The source opens (schema only) and holds every column the study names."""
    import pyarrow as pa

    from tunepipe.data.io import _infer_format, resolve_source
    from tunepipe.errors import DataError

    cfg = study.data
    source = resolve_source(cfg.source, study_dir)
    try:
        fmt = cfg.format or _infer_format(source)
        names = _schema(source, fmt).names
    except DataError as exc:
        return exc.problems
    except FileNotFoundError:
        return [
            f"data.source: {source} does not exist; give a file, folder or URI pyarrow can "
            "open (a relative path starts at the study file's folder), or a built-in set"
        ]
    except (pa.ArrowInvalid, OSError, ValueError) as exc:
        return [f"data.source: cannot read {source} as {fmt}: {exc}"]
    shown = ", ".join(names[:MAX_COLUMNS_SHOWN]) + (
        " ..." if len(names) > MAX_COLUMNS_SHOWN else ""
    )
    named = [("data.label", c) for c in cfg.labels]
    named += [("data.features", c) for c in cfg.features or []]
    named += [("data.image_column", cfg.image_column)] if cfg.image_column else []
    return [
        f"{field}: column {column!r} is not in {source}{_near(column, names)}; its columns: {shown}"
        for field, column in named
        if column not in names
    ]


def _schema(source: str, fmt: str) -> Any:
    """The columns of a source without reading its rows. One local file: its format's own
    reader (pyarrow.dataset imports pandas, which alone costs `validate` half a second)."""
    if "://" in source or not Path(source).is_file():
        import pyarrow.dataset as ds

        return ds.dataset(source, format="ipc" if fmt == "feather" else fmt).schema
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.read_schema(source)
    if fmt == "feather":
        import pyarrow.ipc as ipc

        with ipc.open_file(source) as reader:
            return reader.schema
    import pyarrow.csv as csv

    with csv.open_csv(source) as reader:
        return reader.schema


def code_problems(field: str, target: str, paths: list[str]) -> list[str]:
    """`package.module:name` is found on disk with `paths` first on the import path, and the
    module's source defines `name` at its top level (read, not run, when it is a .py file)."""
    module_name, _, attr = target.partition(":")
    added = [p for p in paths if p not in sys.path]
    sys.path[:0] = added
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError) as exc:  # a parent package that fails to import
        return [f"{field}: cannot find {module_name!r} ({exc}); {_where(paths)}"]
    finally:
        for p in added:
            sys.path.remove(p)
    if spec is None:
        return [f"{field}: no module {module_name!r}; {_where(paths)}"]
    origin = spec.origin or ""
    if not origin.endswith(".py"):
        return []  # a compiled or namespace module: only importing it would tell
    try:
        tree = ast.parse(Path(origin).read_text(encoding="utf-8"), filename=origin)
    except (OSError, SyntaxError, UnicodeDecodeError) as exc:
        return [f"{field}: cannot read {origin}: {exc}"]
    if attr not in _top_level_names(tree):
        return [f"{field}: {origin} defines no {attr!r}; check the name after the ':'"]
    return []


def _top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
    return names


def _where(paths: list[str]) -> str:
    return f"looked in {', '.join(paths)} and the installed packages; set code_dir in the study"


def _near(name: str, names: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, names, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
