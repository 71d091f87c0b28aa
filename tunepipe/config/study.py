"""The study file's top level: one StudyConfig holds every section."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from tunepipe.config.common import IMPORT_PATH, Strict
from tunepipe.config.data import DataConfig
from tunepipe.config.domains import Domain
from tunepipe.config.model import ModelConfig
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
        False, description="write TensorBoard event files in each trial's folder (Ray's TBX logger)"
    )
    metric: str = "val_loss"
    mode: Literal["min", "max"] = "min"
    playbook: PlaybookConfig = Field(default_factory=PlaybookConfig)

    @field_validator("trainable")
    @classmethod
    def _trainable_path(cls, v: str | None) -> str | None:
        if v is not None and not IMPORT_PATH.match(v):
            raise ValueError("write it as package.module:function")
        return v
