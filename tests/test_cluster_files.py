"""The files for real clusters (launcher YAML, Dockerfile) cannot run here; check what we can."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the test extra installs tomli, the same parser
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]


def _ray_pin():
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    (ray,) = [Requirement(d) for d in deps if Requirement(d).name == "ray"]
    return ray.specifier


def _launcher() -> dict:
    return yaml.safe_load((REPO / "cluster" / "cluster-launcher.yaml").read_text())


def test_launcher_has_a_cpu_head_and_gpu_workers():
    config = _launcher()
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert "GPU" not in head["resources"]
    gpu = [name for name, t in types.items() if t.get("resources", {}).get("GPU", 0) >= 1]
    assert gpu and config["head_node_type"] not in gpu
    assert all(types[name]["max_workers"] <= config["max_workers"] for name in gpu)


def test_launcher_installs_tunepipe_with_the_pinned_ray():
    config = _launcher()
    commands = " ".join(config["setup_commands"] + config["head_setup_commands"])
    versions = re.findall(r"ray\[[a-z,]+\]==([\d.]+)", commands)
    assert versions and all(Version(v) in _ray_pin() for v in versions)
    for role in ("head_setup_commands", "worker_setup_commands"):
        assert any("pip install ~/tunepipe" in c for c in config[role]), role
    assert config["file_mounts"]["~/tunepipe"] == "."


def test_launcher_starts_every_node_with_token_auth_and_a_private_token():
    config = _launcher()
    for role in ("head_start_ray_commands", "worker_start_ray_commands"):
        (start,) = [c for c in config[role] if "ray start" in c]
        assert "RAY_AUTH_MODE=token" in start and "RAY_AUTH_TOKEN_PATH=" in start, role
    head_start = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_start
    assert any("chmod 600 ~/.tunepipe/ray_auth_token" in c for c in config["setup_commands"])


def test_dockerfile_base_image_matches_the_ray_pin_and_sets_token_auth():
    text = (REPO / "cluster" / "Dockerfile").read_text()
    (tag,) = re.findall(r"^ARG RAY_TAG=(\S+)$", text, flags=re.M)
    assert Version(tag.split("-")[0]) in _ray_pin()
    assert "FROM rayproject/ray:${RAY_TAG}" in text
    assert "RAY_AUTH_MODE=token" in text
    # Everything COPY names must exist, or `docker build` fails.
    for line in re.findall(r"^COPY (?:--\S+ )*(.+) \S+$", text, flags=re.M):
        for src in line.split():
            if src != "README.md":  # pyproject requires it; the foundation branch writes it
                assert (REPO / src).exists(), src
