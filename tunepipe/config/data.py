"""The `data:` section: where rows come from and how they are split and scaled."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from tunepipe.config.common import Strict


class HFlip(Strict):
    """A horizontal flip at batch time that mirrors x coordinates and swaps left/right labels."""

    swap: list[Annotated[list[str], Field(min_length=2, max_length=2)]] = Field(
        default_factory=list,
        description="left/right pairs swapped by a flip: label columns, or keypoint names whose "
        "<name>_x and <name>_y columns are both labels",
    )
    x_suffix: str = Field("_x", description="label columns ending so are x coordinates, mirrored")
    probability: float = Field(0.5, gt=0, le=1, description="share of each batch flipped")


class AugmentConfig(Strict):
    """Batch-time augmentation: applied to training batches when drawn, never to the data."""

    hflip: HFlip | None = None


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
    scale: Literal["standard", "range"] = Field(
        "standard",
        description="standard: mean 0, std 1; range: features to [0, 1] and regression "
        "targets to [-1, 1] with train-split min and max (the case study)",
    )
    missing_labels: Literal["refuse", "drop", "mask"] = Field(
        "refuse",
        description="rows with missing regression labels: refuse (an error with the count), "
        "drop them, or mask: keep them, the loss averages over the present labels only",
    )
    augment: AugmentConfig | None = None

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

    @model_validator(mode="after")
    def _flip_needs_images(self) -> DataConfig:
        if self.augment and self.augment.hflip and not self.image_shape:
            raise ValueError("augment.hflip flips images: set data.image_shape")
        return self
