"""Reusing a passed sanity stage when the study's content has not changed.

The checks read the data, the model, the training settings, the search space and the playbook
settings; not the study's name, storage, trial count, resources, searcher, budget, target,
warm start, trackers or monitoring. A passed result is kept under
~/.tunepipe/cache/sanity/ (TUNEPIPE_CACHE overrides the folder) keyed by a hash of what the checks
read: those study fields, the prepared split's bytes and tunepipe's version. The next run of the
same content copies its sanity.json and plots instead of re-running it. A failed result is never
kept, and studies with own code (a custom model factory or trainable) are always checked again:
their code can change without the study file changing.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
from pathlib import Path
from typing import Any

from tunepipe.playbook.result import SanityResult

# What the checks do not read: changing these reuses the stage.
NOT_READ = {
    "schema_ref", "name", "storage", "num_samples", "resources", "max_failures", "tensorboard",
    "trackers", "monitoring", "search", "budget", "target", "warm_start",
}  # fmt: skip
RESULT_FILE = "result.pkl"


def cache_root() -> Path:
    return Path(os.environ.get("TUNEPIPE_CACHE") or "~/.tunepipe/cache").expanduser() / "sanity"


def content_key(study: Any, data: Any) -> str | None:
    """The hash of what the sanity stage reads; None when it cannot be reused (own code)."""
    if study.trainable or getattr(study.model, "kind", None) == "custom" or data is None:
        return None
    from tunepipe import __version__

    h = hashlib.sha256()
    fields = study.model_dump(mode="json", exclude=NOT_READ)
    h.update(json.dumps([__version__, fields], sort_keys=True, default=str).encode())
    for split in (data.train, data.val, data.test):
        if split is not None:
            h.update(split.x.tobytes())
            h.update(split.y.tobytes())
    return h.hexdigest()[:32]


def load(key: str | None, loc: Any) -> SanityResult | None:
    """The kept result for `key`, its files copied into the run folder `loc`; None on a miss."""
    folder = cache_root() / key if key else None
    if folder is None or not (folder / RESULT_FILE).is_file():
        return None
    try:
        result = pickle.loads((folder / RESULT_FILE).read_bytes())  # noqa: S301 - our own file
    except Exception:  # noqa: BLE001 - a broken cache entry is a miss, and is removed
        shutil.rmtree(folder, ignore_errors=True)
        return None
    loc.fs.create_dir(loc.path, recursive=True)
    for f in folder.iterdir():
        if f.name != RESULT_FILE:
            with loc.fs.open_output_stream(f"{loc.path}/{f.name}") as out:
                out.write(f.read_bytes())
    result.notes = [*result.notes, f"reused: the study's content is unchanged since {key[:8]}"]
    return result


def keep(key: str | None, result: SanityResult, loc: Any, files: list[str]) -> None:
    """Keep a passed result and its files (already written into `loc`) under `key`."""
    if key is None or not result.passed:
        return
    folder = cache_root() / key
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    try:
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / RESULT_FILE).write_bytes(pickle.dumps(result))
        for name in files:
            with loc.fs.open_input_stream(f"{loc.path}/{name}") as f:
                (tmp / name).write_bytes(f.read())
        tmp.replace(folder)  # whole or not at all; a concurrent run's copy wins if first
    except OSError:
        pass  # a cache that cannot be written only costs the next run the stage again
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
