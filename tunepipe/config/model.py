"""The `model:` section: built-in MLP and CNN, or a custom factory."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, field_validator

from tunepipe.config.common import IMPORT_PATH, Strict


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
    fc_layers: int = Field(1, ge=1, description="dense layers after the convolutions")

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
