"""Run folders on any filesystem pyarrow opens: local paths and URIs alike, from the start."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq


@dataclass(frozen=True)
class RunLocation:
    """Where a study's run folder lives: `fs` + `path`; `storage` is what Ray Tune is given."""

    fs: pafs.FileSystem
    storage: str  # storage_path for Ray (absolute local path or URI)
    storage_path: str  # the same inside `fs`
    name: str

    @property
    def path(self) -> str:
        return f"{self.storage_path.rstrip('/')}/{self.name}"

    @property
    def display(self) -> str:
        return f"{self.storage.rstrip('/')}/{self.name}"

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    def exists(self, relative: str = "") -> bool:
        target = f"{self.path}/{relative}" if relative else self.path
        return self.fs.get_file_info(target).type != pafs.FileType.NotFound

    def write_parquet(self, relative: str, table: pa.Table) -> None:
        pq.write_table(table, f"{self.path}/{relative}", filesystem=self.fs)

    def read_parquet(self, relative: str) -> pa.Table:
        return pq.read_table(f"{self.path}/{relative}", filesystem=self.fs)

    def write_text(self, relative: str, text: str) -> None:
        self.fs.create_dir(self.path, recursive=True)
        with self.fs.open_output_stream(f"{self.path}/{relative}") as out:
            out.write(text.encode())

    def read_text(self, relative: str) -> str:
        with self.fs.open_input_stream(f"{self.path}/{relative}") as src:
            return src.read().decode()

    def write_json(self, relative: str, obj: Any) -> None:
        self.write_text(relative, json.dumps(obj, indent=2, default=_json_default) + "\n")

    def read_json(self, relative: str) -> Any:
        return json.loads(self.read_text(relative))


def locate(storage: str, name: str) -> RunLocation:
    """A RunLocation for `<storage>/<name>`; local paths are made absolute."""
    if "://" not in storage:
        storage = os.path.abspath(os.path.expanduser(storage))
        return RunLocation(pafs.LocalFileSystem(), storage, storage, name)
    fs, path = pafs.FileSystem.from_uri(storage)
    return RunLocation(fs, storage, path, name)


def locate_run_dir(run_dir: str) -> RunLocation:
    """A RunLocation from a run folder's own path (".", "~/runs/x", ...) or URI."""
    if "://" not in run_dir:
        run_dir = os.path.abspath(os.path.expanduser(run_dir))
    run_dir = run_dir.rstrip("/")
    parent, _, name = run_dir.rpartition("/")
    return locate(parent or "/", name)  # "" only for a folder right under the root


STUDY_FILE = "study.yaml"  # written when the search starts: what makes a folder a study
# What Ray Tune leaves in a run folder before any trial reports; a study taken over drops them.
RAY_STATE_PREFIXES = ("tuner.pkl", "experiment_state-", "basic-variant-state-", "search_gen_state-")


def has_trials(loc: RunLocation) -> bool:
    """Whether any trial of the study in `loc` reported (a trial folder holding result.json)."""
    if not loc.exists():
        return False
    for info in loc.fs.get_file_info(pafs.FileSelector(loc.path)):
        if info.type == pafs.FileType.Directory:
            found = loc.fs.get_file_info(f"{info.path}/result.json")
            if found.type == pafs.FileType.File and found.size:
                return True
    return False


def new_run_location(storage: str, name: str) -> RunLocation:
    """The run folder for a new run of study `name`: `<storage>/<name>`, else `<name>-2`, `-3`...

    A folder whose study stopped before its first trial reported (a failed sanity stage, a crash
    while starting) holds nothing worth keeping: it is taken over, without Ray's stale state, so
    that running the corrected study file again works (nothing to delete by hand).
    """
    n = 1
    while True:
        loc = locate(storage, name if n == 1 else f"{name}-{n}")
        if not loc.exists(STUDY_FILE) or not has_trials(loc):
            _drop_ray_state(loc)
            return loc
        n += 1


def _drop_ray_state(loc: RunLocation) -> None:
    if not loc.exists():
        return
    for info in loc.fs.get_file_info(pafs.FileSelector(loc.path)):
        if info.type == pafs.FileType.File and info.base_name.startswith(RAY_STATE_PREFIXES):
            loc.fs.delete_file(info.path)


def check_storage_reaches_every_node(
    loc: RunLocation, hosts: set[str], shared: bool = False
) -> None:
    """Refuse a local storage path when the cluster's nodes live on more than one host.

    Trials write checkpoints and logs from whichever node runs them, and a restarted or resumed
    trial reads them back from another; a folder only one host sees would lose them. A URI
    (s3://, gs://, ...) every node opens passes, and so does a local path the user declares
    shared (`shared`: an NFS mount at the same path on every node). Nodes on one host (a local
    test cluster) pass too.
    """
    if not loc.is_local or shared or len(hosts) <= 1:
        return
    from tunepipe.errors import StorageError

    raise StorageError(
        f"storage {loc.storage} is a local path, but the cluster's nodes are on "
        f"{len(hosts)} hosts ({', '.join(sorted(hosts))}): trials on other hosts could not "
        "write or resume their checkpoints there. Give --storage a URI every node opens "
        "(s3://bucket/runs, gs://..., hdfs://...), or, if the path is a shared mount (NFS) at "
        "the same place on every node, pass --shared-storage (TUNEPIPE_SHARED_STORAGE=1)"
    )


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)
