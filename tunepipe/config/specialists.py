"""The `specialists:` section: one model per group of labels (the case study's last step)."""

from __future__ import annotations

from pydantic import Field, field_validator

from tunepipe.config.common import Strict


class SpecialistGroup(Strict):
    """One specialist: its label columns and the settings that differ from the study's."""

    labels: list[str] = Field(min_length=1, description="label columns (or keypoints: <name>_x/_y)")
    max_epochs: int | None = Field(None, ge=1, description="default: scheduler.max_epochs")
    patience: int | None = Field(None, ge=1, description="default: specialists.patience")
    lr: float | None = Field(None, gt=0, description="default: train.lr")
    init_from: str | None = Field(None, description="default: specialists.init_from")


class SpecialistsConfig(Strict):
    """Each group trains on every row that has all its labels, stops early by patience, and may
    start from an earlier run (init_from: net6/net7); load_model combines them."""

    groups: dict[str, SpecialistGroup] = Field(min_length=1)
    patience: int = Field(200, ge=1, description="E1: epochs without a new best val loss")
    init_from: str | None = Field(None, description="a run folder every group starts from")

    @field_validator("groups")
    @classmethod
    def _names(cls, v: dict[str, SpecialistGroup]) -> dict[str, SpecialistGroup]:
        import re

        bad = [k for k in v if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", k)]
        if bad:
            raise ValueError(f"group names become folder names: letters, digits, _.- ({bad})")
        return v
