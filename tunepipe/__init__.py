"""tunepipe: a deep-learning tuning playbook on Ray Tune.

Importing tunepipe is cheap: Ray and torch load only when a function that needs them is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["__version__", "load_model", "load_study", "run_study"]

if TYPE_CHECKING:
    from tunepipe.engine.runner import run_study
    from tunepipe.predict import load_model
    from tunepipe.study import load_study


def __getattr__(name: str) -> Any:
    if name == "load_model":
        from tunepipe.predict import load_model

        return load_model
    if name == "run_study":
        from tunepipe.engine.runner import run_study

        return run_study
    if name == "load_study":
        from tunepipe.study import load_study

        return load_study
    raise AttributeError(name)
