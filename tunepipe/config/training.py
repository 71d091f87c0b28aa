"""How trials train, are scheduled and stopped: `train:`, `scheduler:`, `stopping:`, `playbook:`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from tunepipe.config.common import Strict
from tunepipe.config.fast import FastPathSettings


class LRSchedule(Strict):
    """In-trial schedule; the base rate is `lr` (a plateau decay scales it, L1)."""

    kind: Literal["constant", "step", "linear", "cosine"] = "constant"
    step_size: int = Field(10, ge=1, description="step: epochs between decays")
    gamma: float = Field(0.5, gt=0, lt=1, description="step: the factor (L1: 0.1, 0.3 or 0.5)")
    final_fraction: float = Field(0.01, ge=0, lt=1, description="linear/cosine: last lr / lr")
    momentum_end: float | None = Field(
        None, ge=0, lt=1, description="linear: momentum rises to this (net4: 0.9 → 0.999)"
    )


class TrainConfig(FastPathSettings):
    optimizer: Literal["adam", "sgd"] = Field("adam", description="O1: Adam is the best default")
    lr: float = Field(3e-4, gt=0, description="O1: Adam's safe default")
    momentum: float = Field(0.9, ge=0, lt=1, description="MO1 (SGD momentum, Adam beta1)")
    nesterov: bool = Field(False, description="sgd: Nesterov momentum (the case study's nets)")
    weight_decay: float = Field(0.0, ge=0)
    batch_size: int = Field(64, ge=1, strict=True, description="B1: 16 to 128")  # not `true`
    grad_clip: float | None = Field(None, gt=0, description="M2: clip grad norm (5 or 15 for RNNs)")
    checkpoint_every: int | Literal["auto"] = Field(
        "auto",
        description="longest gap between checkpoints: epochs, or auto (30 s of training); "
        "decisions and resume get theirs anyway (docs/checkpoints.md)",
    )

    @field_validator("checkpoint_every", mode="before")
    @classmethod
    def _every(cls, v: object) -> object:
        if v != "auto" and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ValueError("checkpoint_every is a number of epochs (1 or more) or auto")
        return v

    lr_schedule: LRSchedule = Field(default_factory=LRSchedule)


class SchedulerConfig(Strict):
    """How trials are scheduled: ASHA (default), PBT, or FIFO; the playbook rules run under all."""

    kind: Literal["asha", "pbt", "fifo"] = "asha"
    max_epochs: int = Field(20, ge=1)
    grace_period: int | None = Field(
        None,
        ge=1,
        description="asha: epochs before a trial may be pruned (default: max_epochs // 10, >= 1)",
    )
    reduction_factor: float = Field(3, gt=1, description="asha: keep the top 1/rf at each rung")
    brackets: int = Field(1, ge=1)
    rung_rule: Literal["percentile", "rank"] = Field(
        "percentile",
        description="asha: percentile (Ray's: beat the 1-1/rf percentile of earlier arrivals) or"
        " rank (top 1/rf of the rung, itself included, as Optuna's successive halving)",
    )
    perturbation_interval: int = Field(4, ge=1, description="pbt: epochs between exploits")
    burn_in_period: int = Field(0, ge=0)
    quantile_fraction: float = Field(0.25, ge=0, le=0.5)
    resample_probability: float = Field(0.25, ge=0, le=1)
    lr_factors: list[float] = Field([0.5, 0.3], min_length=1, description="pbt: L1 factors")

    @field_validator("grace_period")
    @classmethod
    def _grace(cls, v: int | None, info: ValidationInfo) -> int | None:
        top = info.data.get("max_epochs")
        if v is not None and top is not None and v > top:
            raise ValueError(f"grace_period must not exceed max_epochs ({top})")
        return v

    @model_validator(mode="after")
    def _default_grace(self) -> SchedulerConfig:
        """A tenth of the epoch budget, at least 1 (docs/schedulers.md: chosen on seeds 0-2 of
        digits, where a grace period of 1 pruned the best trial on a noisy first epoch)."""
        if self.grace_period is None:
            self.grace_period = max(1, self.max_epochs // 10)
        return self

    @field_validator("lr_factors")
    @classmethod
    def _factors(cls, v: list[float]) -> list[float]:
        if any(not 0 < f < 1 for f in v):
            raise ValueError("each factor is between 0 and 1 (the playbook's 0.1, 0.3, 0.5)")
        return v


class DivergenceSettings(Strict):
    k: float = Field(10.0, gt=1, description="stop above k x the loss before training (P5)")
    abs_limit: float | None = Field(None, gt=0)
    rising_reports: int = Field(3, ge=1)
    steep_ratio: float = Field(1.5, gt=1)
    stall_reports: int | None = Field(
        3, ge=1, description="stop a trial whose loss never fell below chance in this many reports"
    )
    stall_update_ratio: float = Field(
        0.1, gt=0, description="... or in two, with an update ratio above this (L1: ~1e-3)"
    )


class OverfittingSettings(Strict):
    patience: int = Field(10, ge=1, description="reports without a new best val loss (P6, E1)")
    max_gap: float | None = Field(None, gt=0, description="(val - train) / train limit")
    min_epochs: int = Field(5, ge=0)


class PlateauSettings(Strict):
    patience: int = Field(5, ge=1)
    min_delta: float = Field(0.001, ge=0)
    relative: bool = True
    factor: float = Field(0.5, gt=0, lt=1, description="L1: 0.1, 0.3 or 0.5")
    max_decays: int = Field(3, ge=0)


class StoppingConfig(Strict):
    """The playbook's stopping rules (docs/schedulers.md); null turns one off."""

    initial_loss: float | None = Field(None, description="loss before training; default ln C")
    divergence: DivergenceSettings | None = Field(default_factory=DivergenceSettings)
    overfitting: OverfittingSettings | None = Field(default_factory=OverfittingSettings)
    plateau: PlateauSettings | None = Field(default_factory=PlateauSettings)


class MetricNames(Strict):
    """Which of your trainable's reported metrics the rules read (P3: losses, not accuracies)."""

    val_loss: str = "val_loss"
    train_loss: str = "train_loss"
    lr: str = "lr"


class Resources(Strict):
    cpu: float = Field(1, ge=0)
    gpu: float = Field(0, ge=0, description="fractional values pack several trials on one GPU")

    @field_validator("gpu")
    @classmethod
    def _whole_above_one(cls, v: float) -> float:
        if v > 1 and v != int(v):  # Ray's own rule: a share of one GPU, or whole GPUs
            raise ValueError("above 1, gpu must be a whole number (a fraction shares one GPU)")
        return v


class PlaybookConfig(Strict):
    """The before-you-tune stage (docs/sanity.md): checks run once, on the driver, before Ray."""

    sanity: bool = Field(True, description="run the sanity stage before the search (P1, P5)")
    overfit_samples: int = Field(64, ge=2, description="P1: the tiny subset the net must overfit")
    overfit_steps: int = Field(
        2000, ge=1, description="P1: optimizer steps allowed to overfit it (stops when it has)"
    )
    overfit_threshold: float = Field(
        0.05, gt=0, lt=1, description="P1: pass below this fraction of the chance-level loss"
    )
    lr_range_steps: int = Field(100, ge=10, description="P5: steps of the LR range test")
    lr_range_start: float = Field(1e-7, gt=0, description="P5: first lr of the exponential sweep")
    lr_range_end: float = Field(10.0, gt=0, description="P5: last lr of the exponential sweep")

    @field_validator("lr_range_end")
    @classmethod
    def _sweep_rises(cls, v: float, info: ValidationInfo) -> float:
        start = info.data.get("lr_range_start")
        if start is not None and not v > start * 10:
            raise ValueError(f"the sweep must span over a decade above lr_range_start ({start})")
        return v
