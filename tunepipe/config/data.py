"""The `data:` section: where rows come from and how they are split and scaled."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from tunepipe.config.common import Strict


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
