"""Ray integration: experiment trackers hold what the run folder holds (docs/trackers.md).

One study (examples/digits.yaml with `--set num_samples=4 --set scheduler.max_epochs=3`, no
sanity stage) logs to a real local MLflow store (sqlite) and an offline W&B folder at once; each
tracker's test reads its store back and compares it with history.parquet and results.parquet.
"""

from __future__ import annotations

import glob
import json
import math
import struct
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.conftest import REPO, study_dict
from tunepipe.engine.runner import run_study
from tunepipe.errors import StudyFailed
from tunepipe.study import load_study, parse_study

pytestmark = pytest.mark.ray

SETS = [
    "num_samples=4",
    "scheduler.max_epochs=3",
    "trackers=[mlflow, wandb]",
    "playbook.sanity=false",
    "data.test_fraction=0",
]
METRICS = ("train_loss", "val_loss", "val_acc", "lr")


def run_with_trackers(tmp: Path, study, learns: bool = True):
    """Run `study` logging to a sqlite MLflow store and an offline W&B folder under `tmp`;
    returns (run_dir, results, history, env). `learns=False`: a study at a rate too low to learn
    ends with exit 1 ("no trial learned", issue 9), its outputs all written."""
    env = {
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db",
        "WANDB_MODE": "offline",
        "WANDB_DIR": str(tmp / "wandb"),
        "WANDB_SILENT": "true",
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        mp.chdir(tmp)  # MLflow's artifacts go to ./mlruns beside a sqlite store
        try:
            outcome = run_study(
                study, study_dir=REPO / "examples", storage=str(tmp / "runs"), progress=False
            )
            run_dir = Path(outcome.run_dir)
        except StudyFailed as failed:
            if learns or "no trial learned" not in str(failed):
                raise
            run_dir = tmp / "runs" / study.name
    results = pq.read_table(run_dir / "results.parquet").to_pylist()
    history = pq.read_table(run_dir / "history.parquet").to_pylist()
    return run_dir, results, history, env


@pytest.fixture(scope="module")
def study_run(ray_session, tmp_path_factory):
    """The digits study, run once with both trackers."""
    study = load_study(REPO / "examples/digits.yaml", SETS)
    return run_with_trackers(tmp_path_factory.mktemp("trackers"), study)


def by_trial(history: list[dict]) -> dict[str, dict[str, dict[int, float]]]:
    """history.parquet as trial_id -> metric -> {epoch: value}."""
    out: dict[str, dict[str, dict[int, float]]] = {}
    for row in history:
        for name in METRICS:
            out.setdefault(row["trial_id"], {}).setdefault(name, {})[row["epoch"]] = row[name]
    return out


def test_the_set_overrides_shape_the_study(study_run):
    _, results, history, _ = study_run
    assert len(results) == 4
    assert all(1 <= r["epochs"] <= 3 for r in results)
    assert max(row["epoch"] for row in history) <= 3


def test_mlflow_store_holds_one_run_per_trial_with_its_history(study_run):
    import mlflow

    run_dir, results, history, env = study_run
    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("digits-mlp")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("tunepipe.role") == "study"]
    trials = {r.data.tags["trial_id"]: r for r in runs if "trial_id" in r.data.tags}
    assert len(parents) == 1 and set(trials) == {r["trial_id"] for r in results}
    parent = parents[0]
    expected = by_trial(history)
    for row in results:
        run = trials[row["trial_id"]]
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["stop_reason"] == row["stop_reason"]
        assert run.data.tags["best_checkpoint"] == row["checkpoint"]
        assert float(run.data.params["lr"]) == pytest.approx(row["config.lr"])
        assert run.data.params["optimizer"] == row["config.optimizer"]
        for name in METRICS:
            logged = {m.step: m.value for m in client.get_metric_history(run.info.run_id, name)}
            assert logged == pytest.approx(expected[row["trial_id"]][name]), name
    summary = json.loads((run_dir / "summary.json").read_text())
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["best_val_loss"] == pytest.approx(summary["best_val_loss"])
    assert parent.data.tags["best_trial_id"] == summary["best_trial_id"]
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"summary.json", "results.parquet", "report.html"} <= artifacts


def test_offline_wandb_folder_holds_one_run_per_trial_with_its_history(study_run):
    run_dir, results, history, env = study_run
    files = glob.glob(f"{env['WANDB_DIR']}/wandb/offline-run-*/*.wandb")
    runs = wandb_runs([read_wandb_run(p) for p in files])
    trials = {r["config"].get("trial_id"): r for r in runs if r["job_type"] != "study"}
    studies = [r for r in runs if r["job_type"] == "study"]
    # Seen once in 5 full runs (2026-11-28), before files were grouped by run id: one trial's
    # file held no trial_id (no result reached it). Say enough to tell what happened next time.
    seen = [(r["id"], r["config"].get("trial_id"), len(r["history"]), r["job_type"]) for r in runs]
    decisions = (run_dir / "decisions.json").read_text()
    assert set(trials) == {r["trial_id"] for r in results}, (seen, decisions)
    assert len(studies) == 1 and studies[0]["summary"]["n_trials"] == 4
    expected = by_trial(history)
    for row in results:
        run = trials[row["trial_id"]]
        assert run["group"] == "digits-mlp" and run["project"] == "digits-mlp"
        assert run["summary"]["stop_reason"] == row["stop_reason"]
        assert run["summary"]["best_checkpoint"] == row["checkpoint"]
        assert run["config"]["lr"] == pytest.approx(row["config.lr"])
        for name in METRICS:
            logged = {step: h[name] for step, h in run["history"].items() if name in h}
            assert logged == pytest.approx(expected[row["trial_id"]][name]), name


def test_a_trial_paused_for_lr_decays_stays_one_run_per_tracker(ray_session, tmp_path):
    # A plateau decay pauses the trial and restarts it with a halved lr in its config: Ray's
    # MLflow logger would log the changed param again, which MLflow refuses.
    study = parse_study(
        study_dict(
            name="decays",
            trackers=["mlflow", "wandb"],
            train={"lr": 1e-6, "optimizer": "sgd"},
            scheduler={"max_epochs": 8},
            playbook={"sanity": False},
            stopping={"plateau": {"patience": 2, "min_delta": 0.01, "factor": 0.5}},
        )
    )
    _, results, history, env = run_with_trackers(tmp_path, study, learns=False)
    assert results[0]["lr_decays"] >= 1
    import mlflow

    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("decays").experiment_id
    runs = client.search_runs([experiment], filter_string="tags.trial_id != ''")
    assert len(runs) == 1 and float(runs[0].data.params["lr"]) == pytest.approx(1e-6)
    logged = {m.step: m.value for m in client.get_metric_history(runs[0].info.run_id, "lr")}
    assert logged == pytest.approx({h["epoch"]: h["lr"] for h in history})
    wandb_runs = [
        read_wandb_run(p) for p in glob.glob(f"{tmp_path}/wandb/wandb/offline-run-*/*.wandb")
    ]
    trial = next(r for r in wandb_runs if r["job_type"] != "study")
    assert len(wandb_runs) == 2
    assert {s: h["lr"] for s, h in trial["history"].items() if "lr" in h} == pytest.approx(logged)


FLAKY_FACTORY = """
import os

import torch


def once(input_shape, output_dim, marker):
    if not os.path.exists(marker):  # the first build fails, as a lost worker would
        open(marker, "w").close()
        raise RuntimeError("a transient failure before the first report")
    nn = torch.nn
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, output_dim))
"""


def test_a_trial_retried_after_a_failure_keeps_its_whole_history_in_wandb(ray_session, tmp_path):
    # Tune retries a failed trial (max_failures); its W&B run must still get every epoch.
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "flakynets.py").write_text(FLAKY_FACTORY)
    raw = study_dict(
        name="retried", code_dir="code", playbook={"sanity": False}, trackers=["wandb"]
    )
    raw.update(max_failures=2, scheduler={"kind": "fifo", "max_epochs": 3})
    marker = str(tmp_path / "failed-once")
    raw["model"] = {"kind": "custom", "factory": "flakynets:once", "args": {"marker": marker}}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path / "wandb"),
                           "WANDB_SILENT": "true"}.items():  # fmt: skip
            mp.setenv(key, value)
        out = run_study(parse_study(raw), study_dir=tmp_path, storage=str(tmp_path), progress=False)
    assert Path(marker).exists()  # it did fail once
    (row,) = pq.read_table(f"{out.run_dir}/results.parquet").to_pylist()
    assert row["stop_reason"] == "completed" and row["epochs"] == 3
    files = glob.glob(f"{tmp_path}/wandb/wandb/offline-run-*/*.wandb")
    trial = [r for r in wandb_runs([read_wandb_run(p) for p in files]) if r["job_type"] != "study"]
    assert [r["config"].get("trial_id") for r in trial] == [row["trial_id"]]
    assert sorted(trial[0]["history"]) == [1, 2, 3]


def wandb_runs(files: list[dict]) -> list[dict]:
    """The W&B runs the offline files make once synced: files of one run id are one run (a
    logging actor Ray starts again for a trial writes a second file under the trial's id, and
    `wandb sync` resumes the run with it). Configs, histories and summaries are merged in file
    order; a file that only resumed the run has no job type of its own."""
    runs: dict[str, dict] = {}
    for f in sorted(files, key=lambda f: f["started"]):
        run = runs.setdefault(f["id"], {**f, "config": {}, "history": {}, "summary": {}})
        for part in ("config", "history", "summary"):
            run[part].update(f[part])
        run["job_type"] = run["job_type"] or f["job_type"]
    return list(runs.values())


def read_wandb_run(path: str) -> dict:
    """An offline W&B run file (a LevelDB-style log of protobuf records) as plain data: the
    run's id, start, project, group, job type, config, history {step: {key: value}} and final
    summary."""
    from wandb.proto import wandb_internal_pb2 as pb

    out: dict = {"config": {}, "history": {}, "summary": {}, "job_type": "", "started": 0}
    for record in wandb_records(Path(path).read_bytes(), pb.Record):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            out.update(project=record.run.project, group=record.run.run_group)
            out.update(id=record.run.run_id, started=record.run.start_time.ToMicroseconds())
            out["job_type"] = record.run.job_type
            out["config"].update(_items(record.run.config.update))
        elif kind == "config":
            out["config"].update(_items(record.config.update))
        elif kind == "history":
            out["history"][record.history.step.num] = _items(record.history.item)
        elif kind == "summary":
            out["summary"].update(_items(record.summary.update))
    return out


def _items(items) -> dict:
    return {i.key or "/".join(i.nested_key): _json(i.value_json) for i in items}


def _json(text: str):
    value = json.loads(text, parse_constant=lambda c: math.nan)
    return value


def wandb_records(data: bytes, record_type):
    """W&B's transaction log: a 7-byte ':W&B' header, then LevelDB log blocks of 32 KiB whose
    chunks (4-byte CRC, 2-byte length, 1-byte type: full, first, middle, last) hold records."""
    assert data[:4] == b":W&B", "not a W&B run file"
    pos, block, pending = 7, 32768, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a chunk header is padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        pending += chunk
        if kind in (1, 4):  # full or last: a whole record
            record = record_type()
            record.ParseFromString(pending)
            pending = b""
            yield record
