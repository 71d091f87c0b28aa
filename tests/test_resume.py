"""A `tunepipe run` subprocess killed (SIGKILL) or stopped (SIGTERM) midway, then `tunepipe resume`.

Embedded Ray, no cluster, but run inside a private network namespace like every Ray test:
unshare -rn sh -c 'ip link set lo up && python -m pytest tests/test_resume.py'
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import REPO
from conftest_cluster import private_network_problem

pytestmark = pytest.mark.ray

SLOW_CODE = REPO / "tests" / "slow_code"


@pytest.fixture(autouse=True)
def _private_network() -> None:
    problem = private_network_problem()
    if problem:
        pytest.fail(problem, pytrace=False)


def write_study(
    folder: Path,
    trials: int,
    epochs: int,
    delay: float = 0.05,
    code_dir: str = str(SLOW_CODE),
    checkpoint_every: int = 1,
) -> Path:
    """A digits study whose training batches sleep, so there is time to stop it midway."""
    study = {
        "name": "slow",
        "seed": 0,
        "data": {"source": "digits", "label": "label", "val_fraction": 0.2},
        "model": {"kind": "custom", "factory": "slow_net:slow_mlp", "args": {"delay": delay}},
        "code_dir": code_dir,
        "train": {"batch_size": 256, "checkpoint_every": checkpoint_every},
        "search_space": {"lr": {"type": "loguniform", "low": 1e-3, "high": 1e-2}},
        "scheduler": {"kind": "fifo", "max_epochs": epochs, "grace_period": 1},
        "num_samples": trials,
        "storage": str(folder / "runs"),
    }
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "tunepipe.cli", *args]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def reported_epochs(run: Path) -> dict[str, list[int]]:
    """Each trial folder's reported epochs, in the order result.json holds them."""
    out = {}
    for trial in sorted(p for p in run.iterdir() if p.is_dir() and p.name.startswith("tune_")):
        log = trial / "result.json"
        lines = log.read_text().splitlines() if log.exists() else []
        out[trial.name] = [json.loads(line)["epoch"] for line in lines if line.strip()]
    return out


def checkpoint_epochs(run: Path) -> dict[str, int]:
    """Each trial folder's newest checkpoint epoch on disk (0: none): its reported checkpoints
    and its best weights kept apart (best/, a full checkpoint a resume restarts from too)."""
    out = {}
    for trial in (p for p in run.iterdir() if p.is_dir() and p.name.startswith("tune_")):
        metas = [*trial.glob("checkpoint_*/meta.json"), *trial.glob("best/epoch_*/meta.json")]
        out[trial.name] = max((json.loads(m.read_text())["epoch"] for m in metas), default=0)
    return out


def wait_for_epochs(proc: subprocess.Popen, run: Path, n: int, timeout: float = 400) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the study ended before it could be stopped"
        if run.is_dir() and sum(map(len, reported_epochs(run).values())) >= n:
            return
        time.sleep(0.5)
    kill_family(proc.pid)  # a study left running would hold the CPUs the next tests need
    pytest.fail(f"fewer than {n} epochs reported within {timeout} s")


def kill_family(pid: int) -> None:
    """SIGKILL a process and every process it started (its embedded Ray among them)."""
    try:
        family = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for p in family:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(family, timeout=15)


def resume_and_check(run: Path, epochs: int, trials: int) -> dict[str, list[int]]:
    before = reported_epochs(run)
    on_disk = checkpoint_epochs(run)
    done = subprocess.run(
        cli("resume", str(run)), env=env(), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    after = reported_epochs(run)
    assert len(after) == trials
    for trial, seq in after.items():
        new = seq[len(before.get(trial, [])) :]
        if on_disk.get(trial) == epochs:
            # Finished before the interrupt (its last checkpoint is on disk, even where Ray's log
            # lost that epoch's report): kept, not re-run. history.parquet has the epoch anyway.
            # Nothing is re-trained. Where Ray's log lost the last report, the trial reports
            # that epoch once more from its checkpoint (loop.run_trial), without training it.
            assert new in ([], [epochs]), (trial, seq)
        else:
            assert seq and seq[-1] == epochs, (trial, seq)  # every other trial finished now
            # The first epoch after resume follows the newest checkpoint on disk: nothing is
            # re-run, and a trial with a checkpoint never starts from zero. A trial whose last
            # checkpoint reached storage but whose last report died with the driver reports
            # that last epoch again, once.
            disk = on_disk.get(trial, 0)
            first = disk + 1 if disk < epochs else epochs
            assert new[0] == first, (trial, before.get(trial), new, on_disk)
    table = pq.read_table(run / "results.parquet")
    assert table.num_rows == trials
    assert f"[{trials}/{trials}] trial" in done.stderr  # trials finished before count too
    assert "Tuner.restore" not in done.stderr and "Failed to fetch metrics" not in done.stderr
    sessions = json.loads((run / "sessions.json").read_text())["sessions"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["wall_seconds"] == pytest.approx(sum(s["seconds"] for s in sessions), abs=0.05)
    assert sessions[-1]["kind"] == "resume" and sessions[-1]["ended"] == "finished"
    check_one_truth(run, epochs)
    return after


def own_records(run: Path) -> dict[str, list[dict]]:
    """Each trial's own record of its epochs: the one its final checkpoint carries (fifo: every
    trial ends at its last epoch, and always checkpoints there)."""
    out = {}
    for trial in (p for p in run.iterdir() if p.is_dir() and p.name.startswith("tune_")):
        metas = [json.loads(m.read_text()) for m in trial.glob("checkpoint_*/meta.json")]
        out[trial.name] = max(metas, key=lambda m: m["epoch"])["record"]
    return out


def check_one_truth(run: Path, epochs: int) -> None:
    """history.parquet holds epochs 1..N once per trial, each as the trial recorded it, and
    results.parquet and summary.json report the best epoch of the trial's own record."""
    history = pq.read_table(run / "history.parquet").to_pylist()
    results = {r["trial_id"]: r for r in pq.read_table(run / "results.parquet").to_pylist()}
    records = own_records(run)
    bests = []
    for tid, row in results.items():
        (folder,) = [name for name in records if f"_{tid}_" in name or name.endswith(tid)]
        record = {r["epoch"]: r for r in records[folder]}
        rows = [h for h in history if h["trial_id"] == tid]
        assert [h["epoch"] for h in rows] == list(range(1, epochs + 1)), (tid, rows)
        assert sorted(record) == list(range(1, epochs + 1)), (tid, sorted(record))
        for h in rows:
            assert h["val_loss"] == pytest.approx(record[h["epoch"]]["val_loss"], rel=1e-9)
        best = min(record.values(), key=lambda r: r["val_loss"])
        assert row["epochs"] == epochs
        assert row["val_loss"] == pytest.approx(best["val_loss"], rel=1e-9)
        assert row["best_epoch"] == best["epoch"]
        bests.append(best["val_loss"])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["best_val_loss"] == pytest.approx(min(bests), rel=1e-9)


def test_sigkilled_driver_resumes_every_trial_from_its_newest_checkpoint(tmp_path):
    study = write_study(tmp_path, trials=8, epochs=10)
    run = tmp_path / "runs" / "slow"
    proc = subprocess.Popen(
        cli("run", str(study)), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_for_epochs(proc, run, n=12)
    # The driver and its embedded Ray die together, as when the machine running it is lost.
    family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    kill_family(proc.pid)
    assert not [p for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    before = reported_epochs(run)
    assert any(0 < len(seq) < 10 for seq in before.values())  # stopped midway, truly
    after = resume_and_check(run, epochs=10, trials=8)
    print("epochs before:", before, "\nafter:", after)


@pytest.mark.parametrize(
    ("sig", "at_epochs", "checkpoint_every"),
    [(signal.SIGTERM, 4, 2), (signal.SIGINT, 7, 1)],
    ids=["sigterm-early-every-2", "sigint-later-every-1"],
)
def test_a_signal_stops_gracefully_and_resume_keeps_every_epoch_once(
    tmp_path, sig, at_epochs, checkpoint_every
):
    study = write_study(tmp_path, trials=4, epochs=6, checkpoint_every=checkpoint_every)
    run = tmp_path / "runs" / "slow"
    proc = subprocess.Popen(
        cli("run", str(study)), env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    wait_for_epochs(proc, run, n=at_epochs)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err[-3000:]
    assert f"tunepipe resume {run}" in err
    assert "Tuner.restore" not in err  # Ray's own hint is not the user's
    assert not (run / "results.parquet").exists()
    resume_and_check(run, epochs=6, trials=4)


def test_a_failed_start_is_taken_over_by_run_and_refused_by_resume(tmp_path):
    # issue 10 item 4: a study that stopped before its first trial never traps the user.
    study = write_study(tmp_path, trials=1, epochs=1)
    run = tmp_path / "runs" / "slow"
    run.mkdir(parents=True)
    no_study = subprocess.run(cli("resume", str(run)), env=env(), capture_output=True, text=True)
    assert no_study.returncode == 2
    assert "holds no study.yaml" in no_study.stderr
    (run / "study.yaml").write_text(study.read_text())
    (run / "tuner.pkl").write_bytes(b"left by a crash")
    refused = subprocess.run(cli("resume", str(run)), env=env(), capture_output=True, text=True)
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert "before its first trial reported" in refused.stderr
    again = subprocess.run(cli("run", str(study)), env=env(), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"run folder: {run}" in again.stderr
    assert (run / "results.parquet").is_file()
