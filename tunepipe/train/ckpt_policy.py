"""When a trial checkpoints: when a decision or a resume can need one (`train.checkpoint_every`).

A checkpoint costs a report round trip with files to persist, and every `num_to_keep` of them an
experiment snapshot on the driver. Writing one every epoch paid that for checkpoints nothing ever
read. A checkpoint is written at an epoch that is:

- `last`: the final epoch (the trial's model);
- `best`: a new best validation loss of the trial, unless the trial keeps its best weights apart
  (`best_apart`: tunepipe's Ray trainable writes them straight to the trial's own best/ folder,
  train.checkpoint.keep_best, at each new best of the study's metric, `improves`; best_model/
  is copied from there). A Tune checkpoint costs a report round trip with files to persist and
  driver-side bookkeeping; on digits two thirds of them were new bests early in a trial. The
  best folder is a full checkpoint, so a resume restarts from it when it is the newest;
- `pause`: one where the plateau rule will decay the rate: the scheduler then pauses the trial,
  and Ray resumes it from its last reported checkpoint, which must be this epoch's;
- `exploit`: every epoch under PBT, which clones other trials' newest checkpoints at any time;
- `interval`: the interval since the last checkpoint has passed, `checkpoint_every` epochs, or
  with `auto` (the default) AUTO_SECONDS of training: a killed study loses at most that much.

Not at ASHA's rungs: tunepipe's ASHA stops or continues a trial there and never pauses it (only
the plateau decay pauses), so nothing reads a checkpoint written for a rung.

The plateau decision is mirrored here with the same pure rule the scheduler runs
(tunepipe_schedulers.rules.PlateauRule), fed the same val_loss sequence; its state travels in the
checkpoint, so a trial resumed after a pause mirrors on from where the scheduler's rule stands.
Pure: no Ray, no torch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from tunepipe_schedulers.rules import PlateauRule, PlateauState

# With `checkpoint_every: auto`, the longest a trial trains without a checkpoint. A digits epoch
# takes ~30 ms, so this is rarely what writes one there; on a long epoch it bounds what a kill
# loses (each epoch over it is checkpointed).
AUTO_SECONDS = 30.0


class CheckpointPolicy:
    """Say, epoch by epoch, whether to checkpoint and why (`due`)."""

    def __init__(
        self,
        study: Any,
        state: dict[str, Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
        best_apart: bool = False,
    ) -> None:
        every = study.train.checkpoint_every
        self.every_epochs = None if every == "auto" else int(every)
        self.max_epochs = study.scheduler.max_epochs
        self.every_epoch = study.scheduler.kind == "pbt"
        st = study.stopping.plateau
        self.plateau = PlateauRule(**st.model_dump()) if st and not self.every_epoch else None
        state = state or {}
        self.best = float(state.get("best", math.inf))
        # Under PBT every epoch is checkpointed anyway, and a clone takes the donor's weights.
        self.best_apart = best_apart and not self.every_epoch
        self.metric, self.mode = study.metric, study.mode
        worst = math.inf if self.mode == "min" else -math.inf
        self.kept = float(state.get("kept", worst))  # the metric of the weights kept apart
        self.plateau_state = PlateauState(**state.get("plateau", {}))
        self.clock = clock
        self.last_time = clock()
        self.last_epoch = int(state.get("epoch", 0))

    def due(self, epoch: int, val_loss: float) -> str | None:
        """The reason to checkpoint after `epoch` with this validation loss, or None."""
        reason = None
        if self.plateau is not None and math.isfinite(val_loss):
            if self.plateau.check(self.plateau_state, val_loss) is not None:
                reason = "pause"
        if val_loss < self.best:
            self.best = val_loss
            if not self.best_apart:
                reason = reason or "best"
        reason = reason or self._scheduled(epoch)
        if reason is not None:
            self.last_time, self.last_epoch = self.clock(), epoch
        return reason

    def improves(self, metrics: dict[str, Any]) -> bool:
        """With `best_apart`: whether these metrics are the trial's best yet on the study's
        metric (so its weights are kept as the trial's best); False otherwise."""
        value = metrics.get(self.metric)
        if not self.best_apart or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        if value < self.kept if self.mode == "min" else value > self.kept:
            self.kept = float(value)
            return True
        return False

    def _scheduled(self, epoch: int) -> str | None:
        if epoch >= self.max_epochs:
            return "last"
        if self.every_epoch:
            return "exploit"
        if self.every_epochs is not None:
            return "interval" if epoch - self.last_epoch >= self.every_epochs else None
        return "interval" if self.clock() - self.last_time >= AUTO_SECONDS else None

    def state(self, epoch: int) -> dict[str, Any]:
        """What a checkpoint keeps so a resumed trial's policy goes on from here."""
        return {
            "epoch": epoch,
            "best": self.best,
            "kept": self.kept,
            "plateau": asdict(self.plateau_state),
        }
