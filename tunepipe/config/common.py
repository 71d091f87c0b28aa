"""What every part of the study file shares: strict models, import paths, "did you mean"."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict

IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
# Hyperparameters the built-in trainable reads itself; anything else goes to the model factory.
TRAIN_KEYS = ("optimizer", "lr", "momentum", "weight_decay", "batch_size", "grad_clip")
BUILTIN_DATA = ("digits",)
BUILTIN_METRICS = ("val_loss", "val_acc", "val_rmse")  # selectable: validation only (P8)


class Strict(BaseModel):
    """Unknown keys are errors (the error list adds a "did you mean"); types are strict."""

    # strict: a string is not a number (`dropout: "0.1"`), `yes` is not a GPU count; no inf/NaN.
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def did_you_mean(key: str, options: Any) -> str:
    import difflib

    options = sorted(options)
    # A shortened key ("grace" for "grace_period") is the commonest slip; difflib's ratio
    # undervalues it, so an option that starts with the key wins first.
    close = [o for o in options if len(key) >= 3 and o.startswith(key)]
    close = close or difflib.get_close_matches(key, options, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
