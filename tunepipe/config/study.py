"""The study file's top level: one StudyConfig holds every section."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from tunepipe.config.common import IMPORT_PATH, Strict
from tunepipe.config.data import DataConfig
from tunepipe.config.domains import Domain
from tunepipe.config.model import ModelConfig
from tunepipe.config.monitoring import MonitoringConfig
from tunepipe.config.search import BudgetConfig, SearchConfig, Target
from tunepipe.config.specialists import SpecialistsConfig
from tunepipe.config.training import (
    MetricNames,
    PlaybookConfig,
    Resources,
    SchedulerConfig,
    StoppingConfig,
    TrainConfig,
)


class StudyConfig(Strict):
    """One study: what to train, what to search, how to decide. See docs/study-file.md."""

    schema_ref: str | None = Field(
        None,
        alias="$schema",
        exclude=True,
        description="the JSON Schema editors check this file against (`tunepipe schema`)",
    )
    version: Literal[1] = 1
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    seed: int = Field(0, ge=0)
    task: Literal["classification", "binary", "regression"] = "classification"
    data: DataConfig | None = None
    model: ModelConfig | None = None
    trainable: str | None = Field(
        None, description="package.module:function, your own Ray Tune function trainable"
    )
    code_dir: str | None = Field(
        None, description="folder holding your own code (added to the import path)"
    )
    train: TrainConfig = Field(default_factory=TrainConfig)
    init_from: str | None = Field(
        None, description="a run folder whose best model starts every trial (matching layers)"
    )
    specialists: SpecialistsConfig | None = Field(
        None, description="one model per group of labels, combined by load_model"
    )
    search_space: dict[str, Domain] = Field(default_factory=dict)
    search: SearchConfig = Field(default_factory=SearchConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    target: Target | None = Field(
        None, description="e.g. {val_acc: 0.99}: the study ends once any trial reaches it"
    )
    warm_start: str | None = Field(
        None, description="an earlier run folder whose trials the tpe/cmaes searcher learns from"
    )
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    stopping: StoppingConfig = Field(default_factory=StoppingConfig)
    metrics: MetricNames = Field(default_factory=MetricNames)
    resources: Resources = Field(default_factory=Resources)
    num_samples: int = Field(16, ge=1)
    max_failures: int = Field(
        2, ge=0, description="retries of a failed trial, each from its newest checkpoint"
    )
    storage: str = Field("runs", description="a local folder or a URI pyarrow's filesystems open")
    tensorboard: bool = Field(
        False, description="a synonym of `trackers: [tensorboard]` (kept for older study files)"
    )
    trackers: list[Literal["mlflow", "wandb", "tensorboard"]] = Field(
        default_factory=list,
        description="experiment trackers each trial is logged to through Ray's logger callbacks, "
        "configured by their own environment variables (docs/trackers.md)",
    )
    metric: str = "val_loss"
    mode: Literal["min", "max"] = "min"
    playbook: PlaybookConfig = Field(default_factory=PlaybookConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)

    @field_validator("trackers")
    @classmethod
    def _trackers_once(cls, v: list[str]) -> list[str]:
        twice = sorted({t for t in v if v.count(t) > 1})
        if twice:
            raise ValueError(f"{', '.join(twice)} listed more than once; name each tracker once")
        return v

    @property
    def active_trackers(self) -> list[str]:
        """`trackers`, with `tensorboard: true` read as `tensorboard` in it."""
        extra = ["tensorboard"] if self.tensorboard and "tensorboard" not in self.trackers else []
        return [*self.trackers, *extra]

    @field_validator("trainable")
    @classmethod
    def _trainable_path(cls, v: str | None) -> str | None:
        if v is not None and not IMPORT_PATH.match(v):
            raise ValueError("write it as package.module:function")
        return v
