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
