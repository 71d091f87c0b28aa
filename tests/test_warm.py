"""The warm path: `tunepipe up` / `tunepipe down`, and `tunepipe run` joining it."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.conftest import REPO
from tunepipe.engine import warm


@pytest.fixture
def state(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "warm.json"
    monkeypatch.setenv("TUNEPIPE_WARM_STATE", str(path))
    return path


def test_tests_look_for_the_warm_ray_in_a_folder_of_their_own():
    assert warm.state_path() != warm.DEFAULT_STATE.expanduser()


def test_nothing_is_up_without_a_state_file(state):
    assert warm.current() is None
    assert warm.down() is None


def test_a_state_file_whose_holder_died_is_stale_and_removed(state):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    state.write_text(json.dumps({"pid": dead.pid, "address": "127.0.0.1:1", "num_cpus": 2}))
    assert warm.current() is None
    assert not state.exists()


def test_a_broken_state_file_means_nothing_is_up(state):
    state.write_text("{not json")
    assert warm.current() is None


def test_a_live_holder_is_found(state):
    state.write_text(json.dumps({"pid": os.getpid(), "address": "127.0.0.1:6379", "num_cpus": 2}))
    found = warm.current()
    assert found is not None and found.address == "127.0.0.1:6379" and found.pid == os.getpid()


USER_TRAINABLE = """
from ray import tune

import versioned


def objective(config):
    for epoch in range(1, 3):
        tune.report({"score": versioned.VERSION + config["a"], "epoch": epoch})
"""


def _study(folder: Path, version: int) -> Path:
    (folder / "versioned.py").write_text(f"VERSION = {version}\n")
    (folder / "warm_trainable.py").write_text(USER_TRAINABLE)
    study = folder / "study.yaml"
    study.write_text(
        "name: w\ntrainable: warm_trainable:objective\nmetric: score\nmode: min\n"
        "num_samples: 1\nsearch_space: {a: {type: grid, values: [0.0, 0.5]}}\n"
        "scheduler: {kind: fifo, max_epochs: 2}\n"
    )
    return study


def _builtin_study(folder: Path) -> Path:
    folder.mkdir()
    study = folder / "study.yaml"
    study.write_text(
        "name: b\ntask: classification\ndata: {source: digits, label: label, test_fraction: 0.1}\n"
        "model: {kind: mlp, depth: 1}\nnum_samples: 1\nresources: {cpu: 1}\n"
        "search_space: {lr: {type: grid, values: [0.01, 0.001]}}\n"
        "scheduler: {kind: fifo, max_epochs: 2}\n"
    )
    return study


def _idle_ray_workers(at_least: int = 0, wait: float = 30) -> set[int]:
    """Pids of Ray worker processes bound to no job yet (their title is ray::IDLE), once there
    are `at_least` (waiting up to `wait` seconds)."""
    import time

    deadline = time.monotonic() + wait
    while True:
        found = set()
        for proc in psutil.process_iter(["pid", "cmdline"]):
            cmd = proc.info["cmdline"] or []
            if cmd and cmd[0].startswith("ray::IDLE"):
                found.add(proc.info["pid"])
        if len(found) >= at_least or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def _trial_pids(storage: Path) -> set[int]:
    """The worker processes the trials of the study stored under `storage` reported from."""
    return {
        int(row["pid"])
        for f in storage.glob("*/*/progress.csv")
        for row in csv.DictReader(f.open())
    }


def _cpu_seconds(pids: set[int], over: float) -> float:
    """The CPU time the processes spend in the next `over` seconds (at least one must exist)."""
    import time

    procs = [psutil.Process(pid) for pid in pids]
    assert procs, "no idle Ray worker found"
    before = sum(sum(p.cpu_times()[:2]) for p in procs)
    time.sleep(over)
    return sum(sum(p.cpu_times()[:2]) for p in procs) - before


def _cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """tunepipe_cli with room for Ray's start on a busy 2-core machine."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [sys.executable, "-m", "tunepipe", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def _run(study: Path, storage: Path, *args: str) -> dict:
    done = _cli("run", str(study), "--storage", str(storage), *args, cwd=study.parent)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((storage / "w" / "summary.json").read_text())
    summary["stderr"] = done.stderr
    return summary


@pytest.mark.ray
def test_run_joins_the_warm_ray_with_each_studys_own_code(state, tmp_path):
    up = _cli("up", "--num-cpus", "2")
    assert up.returncode == 0, up.stderr[-2000:]
    try:
        holder = warm.current()
        assert holder is not None and "warm Ray started" in up.stdout
        # `up` returned once its workers had imported torch: they sit idle, not importing.
        busy = _cpu_seconds(_idle_ray_workers(), over=0.5)
        assert busy < 0.1, f"the warm Ray's workers used {busy:.2f} CPU-s in 0.5 s after `up`"
        again = _cli("up")
        assert "already up" in again.stdout and warm.current() == holder
        # A built-in model needs none of the study's folders on the workers, so its trials take
        # the workers `up` prestarted with torch imported instead of booting fresh ones.
        idle = _idle_ray_workers()
        builtin = _builtin_study(tmp_path / "builtin")
        done = _cli("run", str(builtin), "--storage", str(tmp_path / "r0"), cwd=builtin.parent)
        assert done.returncode == 0, done.stderr[-2000:]
        # Its sanity checks and test evaluation ran in the holder, which imported torch at `up`
        # (engine/warm_helper.py), and left what they always leave.
        assert "in the warm Ray's holder" in done.stderr
        run_dir = tmp_path / "r0" / "b"
        assert json.loads((run_dir / "sanity.json").read_text())["passed"]
        assert json.loads((run_dir / "summary.json").read_text())["test"]["test_acc"] > 0.5
        trial_pids = _trial_pids(tmp_path / "r0")
        assert trial_pids and trial_pids <= idle, (trial_pids, idle)
        # At its end it asked the warm Ray for idle workers for the next study (Ray prestarts
        # them only for the first job): the next study's trials take those too.
        idle = _idle_ray_workers(at_least=2)
        done = _cli("run", str(builtin), "--storage", str(tmp_path / "r0b"), cwd=builtin.parent)
        assert done.returncode == 0, done.stderr[-2000:]
        trial_pids = _trial_pids(tmp_path / "r0b")
        assert trial_pids and trial_pids <= idle, (trial_pids, idle)
        first = _run(_study(tmp_path, 10), tmp_path / "r1")
        assert first["ray"] == "warm" and "using the warm Ray" in first["stderr"]
        assert first["best_score"] == pytest.approx(10.0)
        # The user edits a module the trainable imports: the next study sees the edit, not
        # what the warm Ray's workers imported for the first study.
        second = _run(_study(tmp_path, 20), tmp_path / "r2")
        assert second["best_score"] == pytest.approx(20.0) and second["ray"] == "warm"
        # Studies with your code take fresh workers, not the idle ones: those are not added to.
        idle = _idle_ray_workers(at_least=3, wait=5)
        assert 1 <= len(idle) <= 2, f"{len(idle)} idle workers on a 2-CPU warm Ray"
        fresh = _run(_study(tmp_path, 30), tmp_path / "r3", "--fresh")
        assert fresh["ray"] == "embedded" and "using the warm Ray" not in fresh["stderr"]
        assert fresh["best_score"] == pytest.approx(30.0)
        assert warm.current() == holder  # the fresh run left the warm Ray alone
    finally:
        down = _cli("down")
    assert down.returncode == 0 and "stopped" in down.stdout
    assert warm.current() is None and not state.exists()
    assert "no warm Ray was up" in _cli("down").stdout
