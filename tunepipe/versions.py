"""The versions a run was made with, recorded in its run.json and shown in its report."""

from __future__ import annotations

import platform
from importlib import metadata

import tunepipe


def versions() -> dict[str, str]:
    """tunepipe, Ray, PyTorch and Python versions of this process, without importing Ray or torch.

    A package that is not installed is left out rather than guessed.
    """
    found = {"tunepipe": tunepipe.__version__}
    for key, dist in (("ray", "ray"), ("torch", "torch")):
        try:
            found[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    found["python"] = platform.python_version()
    return found
