"""What the sanity stage found: checks, the LR range test, and the JSON the report reads.

sanity.json's schema (docs/sanity.md; tunepipe.report reads exactly these keys):
`{"passed", "checks": [{"name", "status", "detail", ...}], "lr_range": {"lrs", "losses",
"smoothed", "suggested_lr", "suggested_range"} | null, "seconds"}`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["pass", "warn", "fail"]


@dataclass
class Check:
    """One check's outcome. `causes` lists what to look at, most likely first, when not passing."""

    name: str
    status: Status
    detail: str
    causes: list[str] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "status": self.status, "detail": self.detail}
        if self.causes:
            out["causes"] = self.causes
        if self.values:
            out["values"] = {k: _finite(v) for k, v in self.values.items()}
        return out


@dataclass
class LRRange:
    """The LR range test's curve and what it suggests (Smith 2017, fastai's lr_find)."""

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggested_lr: float | None
    suggested_range: tuple[float, float] | None
    min_loss_lr: float | None = None
    steepest_lr: float | None = None
    setting: dict[str, Any] = field(default_factory=dict)  # optimizer, batch size, model used

    def to_json(self) -> dict[str, Any]:
        return {
            "lrs": [_finite(v) for v in self.lrs],
            "losses": [_finite(v) for v in self.losses],
            "smoothed": [_finite(v) for v in self.smoothed],
            "suggested_lr": _finite(self.suggested_lr),
            "suggested_range": list(self.suggested_range) if self.suggested_range else None,
            "min_loss_lr": _finite(self.min_loss_lr),
            "steepest_lr": _finite(self.steepest_lr),
            "setting": self.setting,
        }


@dataclass
class SanityResult:
    """Every check that ran, the LR range test (None when it could not run), wall time."""

    checks: list[Check]
    lr_range: LRRange | None = None
    seconds: float = 0.0
    initial_loss: float | None = None  # measured at init; the divergence rule's reference (P5)
    overfit_curve: list[float] = field(default_factory=list)
    overfit_target: float | None = None
    notes: list[str] = field(default_factory=list)  # e.g. checks skipped for an own trainable

    @property
    def passed(self) -> bool:
        return all(c.status != "fail" for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status == "fail"]

    def check(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)

    def divergence_reference(self, chance: float) -> tuple[float, str]:
        """The divergence rule's "loss before training" (P5) and words saying which it is: the
        measured one when the initial-loss check passed, else the expected chance loss."""
        m, init = self.initial_loss, self.check("initial loss")
        if m is not None and math.isfinite(m) and init is not None and init.status == "pass":
            return float(m), f"the loss measured before training, {m:.4g}"
        if m is None:
            why = "none was measured"
        elif not math.isfinite(m):
            why = f"the measured {m} is not finite"
        else:
            why = f"the initial-loss check warned on the measured {m:.4g}"
        return chance, f"the expected chance loss {chance:.4g} ({why})"

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "checks": [c.to_json() for c in self.checks],
            "lr_range": self.lr_range.to_json() if self.lr_range else None,
            "seconds": round(self.seconds, 3),
            "initial_loss": _finite(self.initial_loss),
            "notes": self.notes,
        }


def _finite(v: Any) -> Any:
    """JSON has no NaN/inf: a diverged loss is written as null; numpy scalars become Python's."""
    if hasattr(v, "item") and not isinstance(v, (list, dict)):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v
