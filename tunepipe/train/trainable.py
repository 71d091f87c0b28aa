"""The Ray Tune function trainable around tunepipe.train.loop.run_trial.

Imports neither torch nor the training loop at module level: the driver imports this module to
hand the function to Tune, and on a warm Ray with the sanity stage reused it would otherwise pay
torch's import (about 1.6 s of CPU, taken from the trials) for nothing.
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tunepipe.config import StudyConfig
    from tunepipe.data import PreparedData


def tune_trainable(config: dict[str, Any], data: PreparedData, study: StudyConfig) -> None:
    """Run one trial under Ray Tune, resuming from the newest checkpoint it can find."""
    import torch
    from ray import tune

    from tunepipe.train import checkpoint as ckpt
    from tunepipe.train.loop import run_trial

    threads = max(1, int(study.resources.cpu))
    torch.set_num_threads(threads)  # a trial uses the CPUs it asked for, not the whole machine

    def report(metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        checkpoint = tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        tune.report(metrics, checkpoint=checkpoint)

    storage = tune.get_context().get_storage()

    def keep_best(folder: str, epoch: int) -> None:  # beside Tune's checkpoints, in storage
        ckpt.keep_best(folder, epoch, storage.trial_fs_path, storage.storage_filesystem)

    # A conditional setting whose condition is unmet comes as None: the study's default applies.
    config = {k: v for k, v in config.items() if v is not None}
    copy = restore_point(tune.get_checkpoint())  # a fresh local copy (resume, decay, exploit)
    try:
        run_trial(config, data, study, report, restore_from=copy, keep_best=keep_best)
    finally:
        if copy is not None:  # else one copy of a checkpoint per restore stays in /tmp
            shutil.rmtree(copy, ignore_errors=True)


def restore_point(given: Any) -> str | None:
    """A local folder to resume from: Ray's checkpoint or the trial's own newest, the later.

    Ray hands the checkpoint its last experiment snapshot knew of. A driver killed between
    snapshots leaves newer checkpoints in the trial's folder in storage; resuming from Ray's would
    re-run those epochs. A checkpoint from another trial's folder (a PBT exploit) always wins: it
    is a deliberate clone, and the trial's own older weights must not replace it.

    `tune.get_context().get_trial_dir()` is no help here: it names the trial's local working
    folder under /tmp/ray, not its folder in storage, where checkpoints are persisted.
    """
    from ray import tune

    from tunepipe.train import checkpoint as ckpt

    storage = tune.get_context().get_storage()
    fs, trial_path = storage.storage_filesystem, storage.trial_fs_path
    own = ckpt.newest_in(trial_path, fs)
    if given is not None:
        given_path = str(given.path).rstrip("/")
        if not given_path.startswith(trial_path.rstrip("/") + "/") or own is None:
            return given.to_directory()
        if (ckpt.checkpoint_epoch(own, fs) or 0) <= (
            ckpt.checkpoint_epoch(given_path, given.filesystem) or 0
        ):
            return given.to_directory()
    if own is None:
        return None
    return tune.Checkpoint(own, filesystem=fs).to_directory()
