"""The GPU fast path's settings under `train:` (docs/gpu.md): each `auto` by default.

`auto` resolves where the trial runs (tunepipe.train.fast.resolve): on a CPU to fp32, no
channels-last, no compile, so a CPU study trains exactly as it did before these settings existed.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tunepipe.config.common import Strict

Auto = Literal["auto"]


class FastPathSettings(Strict):
    precision: Literal["auto", "bf16", "fp16", "fp32"] = Field(
        "auto", description="auto: bf16 autocast on a GPU that supports it, else fp32"
    )
    channels_last: Auto | bool = Field(
        "auto", description="NHWC memory layout for convolutions; auto: on for image input on a GPU"
    )
    compile: Auto | bool = Field(
        "auto",
        description="torch.compile the model; auto: on a GPU, for trials long enough to repay "
        "the compilation",
    )
