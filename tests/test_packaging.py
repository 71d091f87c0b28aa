"""What `pip install` puts into site-packages: only names that cannot clash with another
distribution's (issue 11: a top-level `schedulers` would)."""

import ast
import re
from pathlib import Path

import pytest
from setuptools import find_packages

REPO = Path(__file__).resolve().parents[1]


def test_installed_top_level_packages_are_tunepipe_names_only():
    # (tomllib is Python 3.11+; the project supports 3.10, so read the one line.)
    line = re.search(r"^include = (\[.*\])$", (REPO / "pyproject.toml").read_text(), re.M)
    packages = find_packages(where=REPO, include=ast.literal_eval(line.group(1)))
    top = {p.split(".")[0] for p in packages}
    assert top == {"tunepipe", "tunepipe_schedulers"}
    assert {"tunepipe.config", "tunepipe.engine", "tunepipe.report"} <= set(packages)


def test_old_schedulers_name_is_the_same_modules():
    # The source-only alias gives branches written against `schedulers` the very same objects,
    # so a StopReason made under one name equals one made under the other.
    import tunepipe_schedulers.reasons as new
    import tunepipe_schedulers.reasons as old

    assert old is new
    assert old.StopReason.DIVERGED is new.StopReason.DIVERGED
    with pytest.raises(ModuleNotFoundError):
        import schedulers.no_such_module  # noqa: F401


def test_the_package_version_is_the_distributions():
    # run.json and the report header show tunepipe.__version__: it must be the released one.
    import tunepipe

    line = re.search(r'^version = "(.+)"$', (REPO / "pyproject.toml").read_text(), re.M)
    assert tunepipe.__version__ == line.group(1)


def test_versions_name_tunepipe_ray_torch_and_python_without_importing_them():
    import subprocess
    import sys

    code = (
        "import sys; from tunepipe.versions import versions; v = versions(); "
        "assert 'ray' not in sys.modules and 'torch' not in sys.modules, 'imported'; print(v)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    ).stdout
    found = ast.literal_eval(out)
    import platform
    from importlib import metadata

    assert found == {
        "tunepipe": found["tunepipe"],
        "ray": metadata.version("ray"),
        "torch": metadata.version("torch"),
        "python": platform.python_version(),
    }
