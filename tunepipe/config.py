"""Study files: pydantic models, validated once at the edge (house style 4).

Importing this module must stay cheap (no Ray, no torch): `tunepipe validate` and `tunepipe schema`
answer in well under a second.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
)
from pydantic.json_schema import SkipJsonSchema

IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
# Hyperparameters the built-in trainable reads itself; anything else goes to the model factory.
TRAIN_KEYS = ("optimizer", "lr", "momentum", "weight_decay", "batch_size", "grad_clip")
BUILTIN_DATA = ("digits",)


class Strict(BaseModel):
    """Unknown keys are errors (the error list adds a "did you mean")."""

    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- search-space domains


def _above_low(high: float, info: ValidationInfo) -> float:
    low = info.data.get("low")
    if low is not None and not low < high:
        raise ValueError(f"high must be above low ({low})")
    return high


class _Range(Strict):
    low: float
    high: float
    _high_above_low = field_validator("high")(_above_low)


class Uniform(_Range):
    type: Literal["uniform"]


class LogUniform(_Range):
    type: Literal["loguniform"]

    @field_validator("low")
    @classmethod
    def _positive(cls, v: float) -> float:
        if v <= 0:
            raise ValueError(
                "a loguniform range needs low > 0; use uniform for ranges that touch 0"
            )
        return v


class QUniform(_Range):
    type: Literal["quniform"]
    q: float = Field(gt=0, description="values are rounded to multiples of q")


class RandInt(Strict):
    type: Literal["randint"]
    low: int
    high: int = Field(description="exclusive, as in Ray Tune")
    _high_above_low = field_validator("high")(_above_low)


class Choice(Strict):
    type: Literal["choice"]
    values: list[Any] = Field(min_length=1)


class Grid(Strict):
    type: Literal["grid"]
    values: list[Any] = Field(min_length=1)


Constant = bool | int | float | str | None
DOMAIN_TAGS = ("uniform", "loguniform", "quniform", "randint", "choice", "grid")


def _domain_tag(v: Any) -> str:
    if isinstance(v, dict):
        t = v.get("type")
        return t if t in DOMAIN_TAGS else "bad-domain"
    if isinstance(v, BaseModel):
        return getattr(v, "type", "constant")
    return "constant"


class _BadDomain(Strict):
    type: Literal["uniform", "loguniform", "quniform", "randint", "choice", "grid"]


Domain = Annotated[
    Annotated[Uniform, Tag("uniform")]
    | Annotated[LogUniform, Tag("loguniform")]
    | Annotated[QUniform, Tag("quniform")]
    | Annotated[RandInt, Tag("randint")]
    | Annotated[Choice, Tag("choice")]
    | Annotated[Grid, Tag("grid")]
    | Annotated[_BadDomain, Tag("bad-domain"), SkipJsonSchema()]  # for error messages only
    | Annotated[Constant, Tag("constant")],
    Discriminator(_domain_tag),
]
TAGS_IN_PATHS = (*DOMAIN_TAGS, "bad-domain", "constant", "mlp", "cnn", "custom")


# ---------------------------------------------------------------- data


class DataConfig(Strict):
    source: str = Field(description="a built-in name (digits) or a Parquet/Feather/CSV path or URI")
    format: Literal["parquet", "feather", "csv"] | None = Field(
        None, description="inferred from the file extension when absent"
    )
    features: list[str] | None = Field(
        None, description="feature columns; default: every column except the labels"
    )
    image_column: str | None = Field(None, description="a column of fixed-size lists of pixels")
    image_shape: list[int] | None = Field(
        None, description="(channels, height, width) the features are reshaped to, for CNNs"
    )
    label: str | list[str] = Field(
        description="label column, or several for multi-output regression"
    )
    classes: list[int] | None = Field(
        None, description="the declared class ids; labels outside them are errors"
    )
    val_fraction: float = Field(0.2, gt=0, lt=1)
    test_fraction: float = Field(0.0, ge=0, lt=1, description="held out, evaluated once (P8)")
    normalize: bool = Field(True, description="D1: standardise features with train-split stats")
    standardize_targets: bool = Field(True, description="P2: regression targets to mean 0, std 1")

    @property
    def labels(self) -> list[str]:
        return [self.label] if isinstance(self.label, str) else list(self.label)

    @field_validator("test_fraction")
    @classmethod
    def _room_to_train(cls, v: float, info: ValidationInfo) -> float:
        if v + info.data.get("val_fraction", 0) >= 0.9:
            raise ValueError("val_fraction + test_fraction leaves under 10% of rows for training")
        return v

    @field_validator("image_shape")
    @classmethod
    def _chw(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (len(v) != 3 or min(v) < 1):
            raise ValueError("image_shape is (channels, height, width): three positive integers")
        return v

    @field_validator("image_column")
    @classmethod
    def _one_input(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v and info.data.get("features"):
            raise ValueError("give features or image_column, not both")
        return v


# ---------------------------------------------------------------- models


class _ModelBase(Strict):
    activation: Literal["relu", "tanh"] = Field("relu", description="A1: ReLU first")
    dropout: float = Field(0.0, ge=0, lt=1, description="R1: after the net trains well")
    batch_norm: bool = False
    residual: bool = Field(False, description="RB1: residual blocks (needs equal widths)")


class MLPModel(_ModelBase):
    kind: Literal["mlp"] = "mlp"  # a model with neither kind nor factory is an MLP
    hidden_width: int = Field(128, ge=1)
    depth: int = Field(2, ge=0, description="hidden layers; M1 prefers deep and narrow")


class CNNModel(_ModelBase):
    kind: Literal["cnn"]
    channels: list[int] = Field([32, 64], min_length=1, description="F1: powers of two")
    kernel_size: int = Field(3, ge=1, description="F1: 3x3 filters")
    pool_every: int = Field(1, ge=0, description="2x2 max-pool after every n conv layers (0: none)")
    fc_width: int = Field(128, ge=1)

    @field_validator("channels")
    @classmethod
    def _powers_of_two(cls, v: list[int]) -> list[int]:
        bad = [c for c in v if c < 1 or c & (c - 1)]
        if bad:
            raise ValueError(f"filter counts are powers of two (playbook F1); not {bad}")
        return v


class CustomModel(Strict):
    kind: Literal["custom"] = "custom"
    factory: str = Field(description="import path package.module:function returning an nn.Module")
    args: dict[str, Any] = Field(default_factory=dict)

    @field_validator("factory")
    @classmethod
    def _import_path(cls, v: str) -> str:
        if not IMPORT_PATH.match(v):
            raise ValueError("write it as package.module:function")
        return v


def _model_tag(v: Any) -> str:
    if isinstance(v, dict):
        return v.get("kind") or ("custom" if "factory" in v else "mlp")
    return getattr(v, "kind", "mlp")


ModelConfig = Annotated[
    Annotated[MLPModel, Tag("mlp")]
    | Annotated[CNNModel, Tag("cnn")]
    | Annotated[CustomModel, Tag("custom")],
    Discriminator(
        _model_tag,
        custom_error_type="model_kind",
        custom_error_message="model.kind must be mlp, cnn or custom",
    ),
]


# ---------------------------------------------------------------- training, scheduling, resources


class LRSchedule(Strict):
    """In-trial schedule; the base rate is `lr` (a plateau decay scales it, L1)."""

    kind: Literal["constant", "step", "linear", "cosine"] = "constant"
    step_size: int = Field(10, ge=1, description="step: epochs between decays")
    gamma: float = Field(0.5, gt=0, lt=1, description="step: the factor (L1: 0.1, 0.3 or 0.5)")
    final_fraction: float = Field(0.01, ge=0, lt=1, description="linear/cosine: last lr / lr")
    momentum_end: float | None = Field(
        None, ge=0, lt=1, description="linear: momentum rises to this (net4: 0.9 → 0.999)"
    )


class TrainConfig(Strict):
    optimizer: Literal["adam", "sgd"] = Field("adam", description="O1: Adam is the best default")
    lr: float = Field(3e-4, gt=0, description="O1: Adam's safe default")
    momentum: float = Field(0.9, ge=0, lt=1, description="MO1 (SGD momentum, Adam beta1)")
    weight_decay: float = Field(0.0, ge=0)
    batch_size: int = Field(64, ge=1, strict=True, description="B1: 16 to 128")  # not `true`
    grad_clip: float | None = Field(None, gt=0, description="M2: clip grad norm (5 or 15 for RNNs)")
    checkpoint_every: int = Field(1, ge=1, description="epochs between checkpoints")
    lr_schedule: LRSchedule = Field(default_factory=LRSchedule)


class SchedulerConfig(Strict):
    """How trials are scheduled: ASHA (default), PBT, or FIFO; the playbook rules run under all."""

    kind: Literal["asha", "pbt", "fifo"] = "asha"
    max_epochs: int = Field(20, ge=1)
    grace_period: int = Field(1, ge=1, description="asha: epochs before a trial may be pruned")
    reduction_factor: float = Field(3, gt=1, description="asha: keep the top 1/rf at each rung")
    brackets: int = Field(1, ge=1)
    perturbation_interval: int = Field(4, ge=1, description="pbt: epochs between exploits")
    burn_in_period: int = Field(0, ge=0)
    quantile_fraction: float = Field(0.25, ge=0, le=0.5)
    resample_probability: float = Field(0.25, ge=0, le=1)
    lr_factors: list[float] = Field([0.5, 0.3], min_length=1, description="pbt: L1 factors")

    @field_validator("grace_period")
    @classmethod
    def _grace(cls, v: int, info: ValidationInfo) -> int:
        top = info.data.get("max_epochs")
        if top is not None and v > top:
            raise ValueError(f"grace_period must not exceed max_epochs ({top})")
        return v

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

    def hyperparameter(self, name: str) -> Any:
        """The constant or domain for `name`: the search space first, then train/model settings."""
        if name in self.search_space:
            return self.search_space[name]
        if name in TRAIN_KEYS:
            return getattr(self.train, name)
        return getattr(self.model, name, None)


def cross_field_problems(s: StudyConfig) -> list[tuple[str, str, Any]]:
    """Rules that span fields, as (field path, what is wrong, value given)."""
    if s.trainable:
        both = "data" if s.data is not None else "model" if s.model is not None else None
        if both:
            return [(both, "give either trainable or data+model, not both", s.trainable)]
        return _auto_lr_problems(s)
    problems: list[tuple[str, str, Any]] = []
    for part in ("data", "model"):
        if getattr(s, part) is None:
            problems.append((part, f"{part} is required unless the study names a trainable", None))
    if s.metric not in BUILTIN_METRICS:
        problems.append(
            (
                "metric",
                f"not reported by the built-in trainable; use one of {', '.join(BUILTIN_METRICS)}",
                s.metric,
            )
        )
    elif s.metric == "val_acc" and s.task == "regression":
        problems.append(
            ("metric", "val_acc is not reported for regression; use val_loss or val_rmse", s.metric)
        )
    elif (s.metric == "val_acc") != (s.mode == "max"):
        problems.append(
            (
                "mode",
                f"{s.metric} should be {'maximised' if s.metric == 'val_acc' else 'minimised'}"
                f"; set mode: {'max' if s.metric == 'val_acc' else 'min'}",
                s.mode,
            )
        )
    if s.model is not None and not isinstance(s.model, CustomModel):
        allowed = set(TRAIN_KEYS) | set(type(s.model).model_fields) - {"kind"}
        for key, value in s.search_space.items():
            if key not in allowed:
                problems.append(
                    (
                        f"search_space.{key}",
                        f"neither a training setting nor a "
                        f"{s.model.kind} model setting{did_you_mean(key, allowed)}",
                        value,
                    )
                )
    batch = s.search_space.get("batch_size", s.train.batch_size)
    for b in getattr(batch, "values", [batch]):
        if not (isinstance(b, int) and not isinstance(b, bool) and b >= 1):
            problems.append(("search_space.batch_size", "batch sizes are positive integers", b))
    problems += _space_value_problems(s)
    return problems + _auto_lr_problems(s)


AUTO_LR = "auto"  # search_space.lr: auto → the sanity stage's LR range test picks the range


def _auto_lr_problems(s: StudyConfig) -> list[tuple[str, str, Any]]:
    """`lr: auto` needs the LR range test: the built-in trainable and the sanity stage."""
    if s.search_space.get("lr") != AUTO_LR:
        return []
    if s.trainable:
        return [("search_space.lr", "auto needs the built-in trainable (data + model)", AUTO_LR)]
    if not s.playbook.sanity:
        return [("search_space.lr", "auto needs the sanity stage (playbook.sanity: true)", AUTO_LR)]
    return []


def _space_value_problems(s: StudyConfig) -> list[tuple[str, str, Any]]:
    """Each value a search-space entry can take must pass its setting's own rules (dropout < 1,
    hidden_width ≥ 1, optimizer adam|sgd, ...), so a bad range fails here, not inside a trial."""
    from pydantic import TypeAdapter, ValidationError

    owners = [TrainConfig] + ([type(s.model)] if s.model and s.model.kind != "custom" else [])
    problems = []
    for key, dom in s.search_space.items():
        if key == "batch_size" or dom == "auto":
            continue
        field = next((o.model_fields[key] for o in owners if key in o.model_fields), None)
        if field is None:
            continue
        adapter = TypeAdapter(Annotated[field.annotation, field])
        for value in _domain_values(dom):
            try:
                adapter.validate_python(value)
            except ValidationError as exc:
                msg = exc.errors(include_url=False)[0]["msg"].replace("Input should be", "must be")
                problems.append((f"search_space.{key}", f"{key} {msg}", value))
                break
    return problems


def _domain_values(dom: Any) -> list[Any]:
    """The values a domain can produce that decide its validity: bounds, or every choice."""
    if not isinstance(dom, BaseModel):
        return [dom]
    if hasattr(dom, "values"):
        return list(dom.values)
    high = dom.high - 1 if dom.type == "randint" else dom.high
    return [dom.low, high]


BUILTIN_METRICS = ("val_loss", "val_acc", "val_rmse", "train_loss")


def did_you_mean(key: str, options: Any) -> str:
    import difflib

    options = sorted(options)
    # A shortened key ("grace" for "grace_period") is the commonest slip; difflib's ratio
    # undervalues it, so an option that starts with the key wins first.
    close = [o for o in options if len(key) >= 3 and o.startswith(key)]
    close = close or difflib.get_close_matches(key, options, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def is_finite_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
