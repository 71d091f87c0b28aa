"""What `pip install` puts into site-packages: only names that cannot clash with another
distribution's (issue 11: a top-level `schedulers` would)."""

import ast
import re
from pathlib import Path

from setuptools import find_packages

REPO = Path(__file__).resolve().parents[1]


def test_installed_top_level_packages_are_tunepipe_names_only():
    # (tomllib is Python 3.11+; the project supports 3.10, so read the one line.)
    line = re.search(r"^include = (\[.*\])$", (REPO / "pyproject.toml").read_text(), re.M)
    packages = find_packages(where=REPO, include=ast.literal_eval(line.group(1)))
    top = {p.split(".")[0] for p in packages}
    assert top == {"tunepipe", "tunepipe_schedulers"}
    assert {"tunepipe.config", "tunepipe.engine", "tunepipe.report"} <= set(packages)


def test_nothing_imports_the_old_generic_schedulers_name():
    # The folder became tunepipe_schedulers (a top-level `schedulers` could clash with another
    # distribution's); no source file may still import the old name.
    found = [
        f"{path.relative_to(REPO)}:{n}"
        for path in REPO.rglob("*.py")
        if ".venv" not in path.parts
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.match(r"\s*(from|import) schedulers\b", line)
    ]
    assert found == []
    assert not (REPO / "schedulers").exists()


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
