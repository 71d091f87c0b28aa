"""Shared fixtures. Ray integration tests share one embedded Ray session (house style 10)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def tunepipe_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The CLI as a user runs it, in a fresh interpreter, importing this checkout's code."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-m", "tunepipe", *args],
        capture_output=True,
        text=True,
        errors="replace",
        env=env,
        cwd=cwd or REPO,
        timeout=60,
    )


def fresh_process(script: str, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    """Run `script` (python -c) in a fresh interpreter from the checkout's root: a study that
    needs a Ray of its own, or a process that has not imported torch yet. Returns the process
    and the JSON its last line of output printed; fails the test with its stderr otherwise."""
    import json

    proc = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session", autouse=True)
def _private_token(tmp_path_factory: pytest.TempPathFactory) -> None:
    # Tests never touch the user's ~/.tunepipe token: each session gets its own 0600 file.
    if "TUNEPIPE_RAY_TOKEN_PATH" not in os.environ:
        folder = tmp_path_factory.mktemp("token")
        folder.chmod(0o700)
        os.environ["TUNEPIPE_RAY_TOKEN_PATH"] = str(folder / "ray_auth_token")


@pytest.fixture(scope="session", autouse=True)
def _no_warm_ray(tmp_path_factory: pytest.TempPathFactory) -> None:
    # Tests never attach to a warm Ray (`tunepipe up`) a user left running: they look for its
    # state file in a folder of their own, where only a test that starts one puts it.
    if "TUNEPIPE_WARM_STATE" not in os.environ:
        os.environ["TUNEPIPE_WARM_STATE"] = str(tmp_path_factory.mktemp("warm") / "warm.json")


@pytest.fixture(autouse=True)
def _own_sanity_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch) -> None:
    # Each test gets an empty cache of passed sanity stages (playbook/reuse.py): a test that
    # breaks a check on purpose must not reuse another test's pass of the same content.
    monkeypatch.setenv("TUNEPIPE_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def ray_session():
    """One embedded Ray for every test marked `ray` (2 CPUs: this machine's size)."""
    import ray

    from tunepipe.engine.session import init_ray

    init_ray(None, num_cpus=2, dashboard=False)
    yield ray
    ray.shutdown()


def study_dict(**overrides) -> dict:
    """A small digits study; tests override what they exercise."""
    base = {
        "name": "t",
        "seed": 0,
        "task": "classification",
        "data": {"source": "digits", "label": "label", "val_fraction": 0.2},
        "model": {"kind": "mlp", "hidden_width": 32, "depth": 1},
        "search_space": {},
        "scheduler": {"kind": "fifo", "max_epochs": 3, "grace_period": 1},
        "num_samples": 1,
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return base
