"""Transitional alias: `schedulers.X` is `tunepipe_schedulers.X` (the same module objects).

Kept in the source tree only, never installed (pyproject's package list names tunepipe and
tunepipe_schedulers alone), so that branches written against the old name still import while
they are merged. Delete this folder once nothing imports `schedulers` any more.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType

_REAL = "tunepipe_schedulers"


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds `schedulers.X` as the already-real `tunepipe_schedulers.X`."""

    def find_spec(
        self, name: str, path: object, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not name.startswith(__name__ + "."):
            return None
        real = _REAL + name[len(__name__) :]
        if importlib.util.find_spec(real) is None:
            return None  # a module only this folder has: found by the ordinary path finder
        return importlib.util.spec_from_loader(name, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(_REAL + spec.name[len(__name__) :])

    def exec_module(self, module: ModuleType) -> None:
        """Already executed under its real name."""


if not any(isinstance(f, _Alias) for f in sys.meta_path):
    sys.meta_path.insert(0, _Alias())

from tunepipe_schedulers import STOP_REASONS, StopReason  # noqa: E402

__all__ = ["STOP_REASONS", "StopReason"]
