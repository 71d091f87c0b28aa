"""Trial checkpoints: model + optimizer + RNG state + what rebuilding the model needs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported where a checkpoint is written or read, not to list them
    import torch

STATE_FILE = "state.pt"
META_FILE = "meta.json"
RECORD_KEY = "record"  # in meta.json: every epoch's metrics up to the checkpoint's, in order
CHECKPOINT_DIR = re.compile(r"^checkpoint_(\d+)$")
BEST_DIR = "best"  # in a trial's folder: its best epoch's weights, kept apart (keep_best)


def save(
    directory: str | Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    epoch: int,
    rng: torch.Generator | None,
    meta: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> None:
    """Write a checkpoint folder: state.pt (tensors) and meta.json (plain, readable settings)."""
    import torch

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {
        "model": model.state_dict(),
        "epoch": epoch,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "rng": rng.get_state() if rng is not None else None,
        "torch_rng": torch.get_rng_state(),
        "extra": extra or {},
    }
    torch.save(state, directory / STATE_FILE)
    (directory / META_FILE).write_text(json.dumps({**meta, "epoch": epoch}, indent=1))


def load(directory: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return (state, meta) of a checkpoint folder."""
    import torch

    directory = Path(directory)
    # Tensors, numbers and plain containers only: loading a checkpoint never runs code.
    state = torch.load(directory / STATE_FILE, map_location="cpu", weights_only=True)
    meta = json.loads((directory / META_FILE).read_text())
    return state, meta


def newest_in(trial_dir: str | Path | None, fs: Any = None) -> str | None:
    """The newest complete checkpoint folder in a trial's own folder (used when Ray hands none).

    Ray snapshots its experiment state only every so often; a driver killed in between would
    otherwise restart the trial from zero although its checkpoints are on disk. `fs` is the
    pyarrow filesystem of `trial_dir` (local when None). "Newest" is the highest epoch in
    meta.json, not the folder's number: after a restore Ray numbers new checkpoints from what its
    last snapshot knew, so a lower-numbered folder can hold a later epoch. The trial's best
    weights kept apart (`keep_best`) are a full checkpoint too (optimizer, RNG, policy state,
    record) and count when newer: a trial stopped by an interrupt or a time budget resumes from
    its latest best, as it did when every new best was a reported checkpoint.
    """
    import pyarrow.fs as pafs

    fs = fs or pafs.LocalFileSystem()
    if not trial_dir or fs.get_file_info(str(trial_dir)).type != pafs.FileType.Directory:
        return None
    found = []
    for info in fs.get_file_info(pafs.FileSelector(str(trial_dir))):
        m = CHECKPOINT_DIR.match(info.base_name)
        if not m or info.type != pafs.FileType.Directory:
            continue
        epoch = checkpoint_epoch(info.path, fs)
        if epoch is not None:
            found.append((epoch, int(m.group(1)), info.path))
    best = _kept_best(trial_dir, fs)
    if best is not None:  # at an epoch a checkpoint also holds, the checkpoint (ranked higher)
        found.append((best[0], -1, best[1]))
    return max(found)[2] if found else None


def checkpoint_epoch(directory: str | Path, fs: Any = None) -> int | None:
    """The epoch a checkpoint folder holds; None when incomplete (no state.pt or meta.json)."""
    import pyarrow.fs as pafs

    fs = fs or pafs.LocalFileSystem()
    if fs.get_file_info(f"{directory}/{STATE_FILE}").type != pafs.FileType.File:
        return None
    try:
        with fs.open_input_stream(f"{directory}/{META_FILE}") as f:
            return int(json.loads(f.read())["epoch"])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None  # a checkpoint cut short while being written


def keep_best(folder: str | Path, epoch: int, trial_dir: str, fs: Any = None) -> str:
    """Keep the checkpoint `folder` (local) as the trial's best: copied to
    `trial_dir`/best/epoch_NNNNN on `fs` (a pyarrow filesystem; local when None), then every
    other folder there removed. Returns the new folder.

    state.pt is written before meta.json, which marks the copy complete (`checkpoint_epoch`): a
    trial killed mid-copy leaves the previous best as the one `best_in` finds. A resumed trial
    that trains an epoch again writes it again, and the folders it then removes are those of the
    epochs it is re-training.
    """
    import pyarrow.fs as pafs

    fs = fs or pafs.LocalFileSystem()
    best = f"{str(trial_dir).rstrip('/')}/{BEST_DIR}"
    dest = f"{best}/epoch_{epoch:05d}"
    fs.create_dir(dest, recursive=True)
    for name in (STATE_FILE, META_FILE):
        with open(Path(folder) / name, "rb") as src, fs.open_output_stream(f"{dest}/{name}") as out:
            out.write(src.read())
    for info in fs.get_file_info(pafs.FileSelector(best)):
        if info.type == pafs.FileType.Directory and info.path.rstrip("/") != dest:
            fs.delete_dir(info.path)
    return dest


def best_in(trial_dir: str | Path | None, fs: Any = None) -> str | None:
    """The trial's best weights kept apart by `keep_best` (its highest complete epoch folder
    under best/), or None: a trial of an own trainable, under PBT, or from before this layout."""
    best = _kept_best(trial_dir, fs)
    return best[1] if best is not None else None


def _kept_best(trial_dir: str | Path | None, fs: Any = None) -> tuple[int, str] | None:
    """(epoch, folder) of `best_in`'s folder: its epoch read once, for `newest_in` too."""
    import pyarrow.fs as pafs

    fs = fs or pafs.LocalFileSystem()
    best = f"{str(trial_dir).rstrip('/')}/{BEST_DIR}" if trial_dir else None
    if best is None or fs.get_file_info(best).type != pafs.FileType.Directory:
        return None
    found = [
        (epoch, info.path)
        for info in fs.get_file_info(pafs.FileSelector(best))
        if info.type == pafs.FileType.Directory
        and (epoch := checkpoint_epoch(info.path, fs)) is not None
    ]
    return max(found) if found else None
