"""The Ray Tune function trainable around tunepipe.train.loop.run_trial."""

from __future__ import annotations

import os
from typing import Any

from tunepipe.config import StudyConfig
from tunepipe.data import PreparedData
from tunepipe.train import checkpoint as ckpt
from tunepipe.train.loop import run_trial


def tune_trainable(config: dict[str, Any], data: PreparedData, study: StudyConfig) -> None:
    """Run one trial under Ray Tune: resume from Ray's checkpoint, else the trial's newest one."""
    import torch
    from ray import tune

    threads = max(1, int(study.resources.cpu))
    torch.set_num_threads(threads)  # a trial uses the CPUs it asked for, not the whole machine
    restore = None
    given = tune.get_checkpoint()
    if given is not None:
        restore = given.to_directory()
    else:
        restore = ckpt.newest_in(_trial_dir())

    def report(metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        checkpoint = tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        tune.report(metrics, checkpoint=checkpoint)

    run_trial(config, data, study, report, restore_from=restore)


def _trial_dir() -> str | None:
    from ray import tune

    path = tune.get_context().get_trial_dir()
    return path if path and os.path.isdir(path) else None
