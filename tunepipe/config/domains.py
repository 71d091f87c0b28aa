"""Search-space domains: how a study file writes a range, a choice or a grid."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Discriminator, Field, Tag, ValidationInfo, field_validator
from pydantic.json_schema import SkipJsonSchema

from tunepipe.config.common import Strict


def _above_low(high: float, info: ValidationInfo) -> float:
    low = info.data.get("low")
    if low is not None and not low < high:
        raise ValueError(f"high must be above low ({low})")
    return high


class _Domain(Strict):
    when: dict[str, Any] | None = Field(
        None,
        description="sample this setting only when others take these values, e.g. "
        "{optimizer: sgd}; otherwise it keeps its default",
    )


class _Range(_Domain):
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

    @field_validator("q")
    @classmethod
    def _bounds_on_grid(cls, q: float, info: ValidationInfo) -> float:
        for bound in ("low", "high"):  # Ray rounds samples to q: bounds off the grid break it
            v = info.data.get(bound)
            if v is not None and abs(v / q - round(v / q)) > 1e-9:
                raise ValueError(f"{bound} ({v}) must be a multiple of q ({q})")
        return q


class RandInt(_Domain):
    type: Literal["randint"]
    low: int
    high: int = Field(description="exclusive, as in Ray Tune")
    _high_above_low = field_validator("high")(_above_low)


class QRandInt(_Domain):
    type: Literal["qrandint"]
    low: int
    high: int = Field(description="inclusive, as in Ray Tune")
    q: int = Field(1, ge=1, description="values are multiples of q")

    @field_validator("high")
    @classmethod
    def _not_below_low(cls, high: int, info: ValidationInfo) -> int:
        low = info.data.get("low")
        if low is not None and high < low:
            raise ValueError(f"high must not be below low ({low})")
        return high


class LogRandInt(_Domain):
    type: Literal["lograndint"]
    low: int = Field(ge=1, description="a log scale starts above 0")
    high: int = Field(description="exclusive, as in Ray Tune")
    _high_above_low = field_validator("high")(_above_low)


class Choice(_Domain):
    type: Literal["choice"]
    values: list[Any] = Field(min_length=1)


class Grid(_Domain):
    type: Literal["grid"]
    values: list[Any] = Field(min_length=1)


Constant = bool | int | float | str | None
DOMAIN_TAGS = (
    "uniform",
    "loguniform",
    "quniform",
    "randint",
    "qrandint",
    "lograndint",
    "choice",
    "grid",
)
INT_DOMAINS = ("randint", "qrandint", "lograndint")  # what integer settings may be searched with


def _domain_tag(v: Any) -> str:
    if isinstance(v, dict):
        t = v.get("type")
        return t if t in DOMAIN_TAGS else "bad-domain"
    if isinstance(v, BaseModel):
        return getattr(v, "type", "constant")
    return "constant"


class _BadDomain(Strict):
    type: Literal[
        "uniform", "loguniform", "quniform", "randint", "qrandint", "lograndint", "choice", "grid"
    ]


Domain = Annotated[
    Annotated[Uniform, Tag("uniform")]
    | Annotated[LogUniform, Tag("loguniform")]
    | Annotated[QUniform, Tag("quniform")]
    | Annotated[RandInt, Tag("randint")]
    | Annotated[QRandInt, Tag("qrandint")]
    | Annotated[LogRandInt, Tag("lograndint")]
    | Annotated[Choice, Tag("choice")]
    | Annotated[Grid, Tag("grid")]
    | Annotated[_BadDomain, Tag("bad-domain"), SkipJsonSchema()]  # for error messages only
    | Annotated[Constant, Tag("constant")],
    Discriminator(_domain_tag),
]
TAGS_IN_PATHS = (*DOMAIN_TAGS, "bad-domain", "constant", "mlp", "cnn", "custom")
