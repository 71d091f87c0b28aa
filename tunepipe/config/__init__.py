"""Study files: pydantic models, validated once at the edge (house style 4).

One module per concern, each read top to bottom: `common` (strict models, names), `domains`
(search-space ranges), `data`, `model`, `training` (train, scheduler, stopping, playbook),
`study` (the top level) and `checks` (rules across fields). Importing this package must stay cheap
(no Ray, no torch): `tunepipe validate` and `tunepipe schema` answer in well under a second.
"""

from tunepipe.config.checks import AUTO_LR, cross_field_problems
from tunepipe.config.common import (
    BUILTIN_DATA,
    BUILTIN_METRICS,
    IMPORT_PATH,
    TRAIN_KEYS,
    Strict,
    did_you_mean,
)
from tunepipe.config.data import DataConfig
from tunepipe.config.domains import (
    DOMAIN_TAGS,
    TAGS_IN_PATHS,
    Choice,
    Constant,
    Domain,
    Grid,
    LogUniform,
    QUniform,
    RandInt,
    Uniform,
)
from tunepipe.config.model import CNNModel, CustomModel, MLPModel, ModelConfig
from tunepipe.config.study import StudyConfig
from tunepipe.config.training import (
    DivergenceSettings,
    LRSchedule,
    MetricNames,
    OverfittingSettings,
    PlateauSettings,
    PlaybookConfig,
    Resources,
    SchedulerConfig,
    StoppingConfig,
    TrainConfig,
)

__all__ = [
    "AUTO_LR",
    "BUILTIN_DATA",
    "BUILTIN_METRICS",
    "DOMAIN_TAGS",
    "IMPORT_PATH",
    "TAGS_IN_PATHS",
    "TRAIN_KEYS",
    "CNNModel",
    "Choice",
    "Constant",
    "CustomModel",
    "DataConfig",
    "DivergenceSettings",
    "Domain",
    "Grid",
    "LRSchedule",
    "LogUniform",
    "MLPModel",
    "MetricNames",
    "ModelConfig",
    "OverfittingSettings",
    "PlateauSettings",
    "PlaybookConfig",
    "QUniform",
    "RandInt",
    "Resources",
    "SchedulerConfig",
    "StoppingConfig",
    "Strict",
    "StudyConfig",
    "TrainConfig",
    "Uniform",
    "cross_field_problems",
    "did_you_mean",
]
