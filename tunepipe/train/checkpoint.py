"""Trial checkpoints: model + optimizer + RNG state + what rebuilding the model needs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

STATE_FILE = "state.pt"
META_FILE = "meta.json"
CHECKPOINT_DIR = re.compile(r"^checkpoint_(\d+)$")


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
    directory = Path(directory)
    state = torch.load(directory / STATE_FILE, map_location="cpu", weights_only=False)
    meta = json.loads((directory / META_FILE).read_text())
    return state, meta


def newest_in(trial_dir: str | Path | None) -> Path | None:
    """The newest complete checkpoint folder in a trial's own folder (used when Ray hands none).

    Ray snapshots its experiment state only every so often; a driver killed in between would
    otherwise restart the trial from zero although its checkpoints are on disk.
    """
    if not trial_dir or not Path(trial_dir).is_dir():
        return None
    found = []
    for p in Path(trial_dir).iterdir():
        m = CHECKPOINT_DIR.match(p.name)
        if m and (p / STATE_FILE).is_file() and (p / META_FILE).is_file():
            found.append((int(m.group(1)), p))
    return max(found)[1] if found else None
