"""The sanity stage as `tunepipe run` and `tunepipe sanity` use it: load, check, write, apply.

`sanity_stage` is the runner's hook; `check_study` is the `tunepipe sanity` command's one call;
`apply_lr_range` writes a copy of a study with the suggested lr range (`--apply`).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunepipe.config import BUILTIN_DATA, StudyConfig
from tunepipe.playbook.output import JSON_FILE, LR_PLOT, OVERFIT_PLOT, print_table, write_outputs
from tunepipe.playbook.result import SanityResult
from tunepipe.playbook.sanity import failure, resolve_auto_lr, run_sanity
from tunepipe.storage import RunLocation, locate, locate_run_dir

OUTPUTS = frozenset({JSON_FILE, LR_PLOT, OVERFIT_PLOT})
SANITY_SUFFIX = ".sanity"  # `tunepipe sanity` writes beside the run folder, never into it


def sanity_stage(
    study: StudyConfig,
    data: Any,
    loc: RunLocation,
    *,
    progress: bool = True,
    console: Any = None,
    defer: Any = None,
    run: Any = None,
) -> tuple[StudyConfig, SanityResult | None]:
    """The first stage of `tunepipe run`: check, write sanity.json + plots into the run folder,
    stop the study (SanityFailed, exit 1) on a failed check, resolve `lr: auto`.

    `defer(fn, *args)`: how a passed stage's files are written off the critical path (the plots
    take 1.5 s and nothing before the report reads them): the runner runs fn(*args) beside the
    search (in the painter process when there is one, else a thread) and waits for it, and its
    errors, before the outputs. A failed stage writes them here.
    `run(study, data)`: what runs the checks when no earlier result is reused (default
    `run_sanity`, here; the runner passes the warm Ray's holder's).
    Returns the study to search (lr resolved) and the result (None when playbook.sanity is off).
    """
    if not study.playbook.sanity:
        return study, None
    from tunepipe.playbook import reuse

    key = reuse.content_key(study, data)
    result = reuse.load(key, loc)  # the same content passed before: its result and files
    if result is None:
        result = (run or run_sanity)(study, data)
        if defer is not None and result.passed:
            defer(write_and_keep, key, result, loc)
        else:
            write_and_keep(key, result, loc)
    if progress:
        print_table(result, console)
    if not result.passed:
        raise failure(result, loc.display)
    return resolve_auto_lr(study, result), result


def write_and_keep(key: str | None, result: SanityResult, loc: RunLocation) -> None:
    """Write the stage's files into the run folder and keep a passed result for reuse."""
    from tunepipe.playbook import reuse

    reuse.keep(key, result, loc, write_outputs(result, loc))


@dataclass
class SanityOutcome:
    result: SanityResult
    out_dir: str
    applied: Path | None = None


def check_study(
    path: str | Path,
    *,
    out: str | None = None,
    storage: str | None = None,
    apply_to: str | Path | None = None,
    console: Any = None,
) -> SanityOutcome:
    """`tunepipe sanity STUDY`: run the stage, write its files into `out` (default
    `<storage>/<name>.sanity/`), print the table; `apply_to` gets the study with the suggested
    lr range when the stage passed. Raises SanityFailed when a check failed."""
    from tunepipe.study import load_study

    path = Path(path)
    study = load_study(path)
    if storage:
        study = study.model_copy(update={"storage": storage})
    data = load_study_data(study, path.parent)
    result = run_sanity(study, data)
    loc = locate_run_dir(out) if out else locate(study.storage, study.name + SANITY_SUFFIX)
    write_outputs(result, loc)
    print_table(result, console)
    if not result.passed:
        raise failure(result, loc.display)
    applied = apply_lr_range(path, result, apply_to) if apply_to else None
    return SanityOutcome(result, loc.display, applied)


def load_study_data(study: StudyConfig, study_dir: Path) -> Any:
    """The prepared data as `tunepipe run` reads it (None for an own trainable); the study's
    folder and code_dir go on the import path, for custom model factories."""
    from tunepipe.data import load_data
    from tunepipe.space import min_batch_size

    study_dir = study_dir.resolve()
    paths = [str(study_dir)] + ([str(study_dir / study.code_dir)] if study.code_dir else [])
    sys.path[:0] = [p for p in paths if p not in sys.path]
    if study.trainable:
        return None
    return load_data(
        study.data, study.task, study.seed, min_rows=min_batch_size(study), base_dir=study_dir
    )


def apply_lr_range(study_path: str | Path, result: SanityResult, out: str | Path) -> Path:
    """Write a copy of the study file whose search_space.lr is the suggested loguniform range.

    The copy keeps what the user wrote (not resolved defaults); relative data and code paths are
    rewritten so the copy works from its own folder. It is validated before it is written.
    """
    import yaml

    from tunepipe.errors import TunepipeError
    from tunepipe.playbook.sanity import round_sig
    from tunepipe.study import parse_study

    found = result.lr_range.suggested_range if result.lr_range else None
    if not found:
        raise TunepipeError("--apply: the LR range test found no range to apply")
    src, out = Path(study_path).resolve(), Path(out)
    raw = yaml.safe_load(src.read_text())
    raw["search_space"] = dict(raw.get("search_space") or {})
    raw["search_space"]["lr"] = {
        "type": "loguniform",
        "low": round_sig(found[0]),
        "high": round_sig(found[1]),
    }
    _rebase(raw, src.parent, out.resolve().parent)
    parse_study(raw, source=str(out))
    head = f"# {src.name} with the lr range suggested by `tunepipe sanity` (LR range test)\n"
    out.write_text(head + yaml.safe_dump(raw, sort_keys=False))
    return out


def _rebase(raw: dict, src_dir: Path, dst_dir: Path) -> None:
    """Relative data.source and code_dir are relative to the study's folder: re-root them."""

    def moved(p: str) -> str:
        if "://" in p or Path(p).is_absolute():
            return p
        return os.path.relpath(src_dir / p, dst_dir)

    data = raw.get("data")
    if isinstance(data, dict) and isinstance(data.get("source"), str):
        if data["source"] not in BUILTIN_DATA:
            data["source"] = moved(data["source"])
    if isinstance(raw.get("code_dir"), str):
        raw["code_dir"] = moved(raw["code_dir"])
