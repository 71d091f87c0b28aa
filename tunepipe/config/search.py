"""How a study searches and when it ends: `search:`, `budget:`, `target:`, `warm_start:`.

The samplers are other libraries' (Ray's random/grid generator, Optuna's TPE and CMA-ES); these
models only say which, with what, and within which limits (docs/search.md).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from tunepipe.config.common import Strict

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)\s*([smhd])\s*)+$")


def parse_duration(value: Any) -> Any:
    """Seconds from `90`, `"20s"`, `"15m"`, `"2h"`, `"1h30m"`; anything else is left for the
    float check to refuse with its own message."""
    if isinstance(value, str) and _DURATION.match(value):
        parts = re.findall(r"(\d+(?:\.\d+)?)\s*([smhd])", value)
        return sum(float(n) * _UNITS[u] for n, u in parts)
    if isinstance(value, str):
        raise ValueError(f"a duration is seconds or like 20s, 15m, 2h, 1h30m; not {value!r}")
    return value


Duration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]


class SearchConfig(Strict):
    """Which sampler proposes the trials' configurations."""

    kind: Literal["random", "grid", "tpe", "cmaes"] = Field(
        "random",
        description="random (and grid domains) as Ray samples them; grid: every choice as a "
        "grid; tpe: Optuna's TPE; cmaes: Optuna's CMA-ES (continuous and integer ranges)",
    )
    n_startup_trials: int | None = Field(
        None, ge=1, description="tpe/cmaes: random trials before the model (Optuna's default)"
    )


class BudgetConfig(Strict):
    """Limits on the study as a whole (each trial's own limit is scheduler.max_epochs)."""

    time: Duration | None = Field(
        None,
        description="wall time of each `tunepipe run`/`resume`: running trials are saved, the "
        "results written, and `tunepipe resume` continues the study",
    )
    max_concurrent_trials: int | None = Field(None, ge=1, description="trials running at once")


Target = dict[str, float]  # metric name -> value; the study ends once any trial reaches one
