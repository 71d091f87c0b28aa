"""The closed set of reasons a trial ends with (`stop_reason` in results.parquet)."""

from __future__ import annotations

from enum import Enum


class StopReason(str, Enum):
    """Why a trial ended (docs/stop-reasons.md). Nothing outside this set is written."""

    COMPLETED = "completed"  # ran its full epoch budget
    PRUNED = "pruned"  # ASHA (or another scheduler) stopped it at a rung: not among the best
    DIVERGED = "diverged"  # P5: non-finite loss, or a loss far above its starting value
    OVERFITTING = "overfitting"  # P6/E1: validation loss rising while training loss falls
    PLATEAU = "plateau"  # P5/L1: no improvement after the allowed learning-rate decays
    ERROR = "error"  # the trial raised; its traceback is in the trial's folder
    TARGET = "target"  # the study reached its `target:`; running trials were stopped with it
    UNFINISHED = "unfinished"  # the study's time budget ran out first; `tunepipe resume` goes on

    def __str__(self) -> str:  # so f-strings print "diverged", not "StopReason.DIVERGED"
        return self.value


STOP_REASONS: tuple[str, ...] = tuple(r.value for r in StopReason)
