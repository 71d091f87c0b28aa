"""Ray integration: whole studies on the embedded Ray (foundation and playbook schedulers)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.conftest import study_dict
from tunepipe.engine.runner import run_study
from tunepipe.errors import StudyFailed
from tunepipe.study import parse_study

pytestmark = pytest.mark.ray


def run(tmp_path: Path, **overrides):
    study = parse_study(study_dict(**overrides))
    outcome = run_study(study, storage=str(tmp_path), progress=False)
    run_dir = Path(outcome.run_dir)
    return (
        run_dir,
        pq.read_table(run_dir / "results.parquet").to_pylist(),
        pq.read_table(run_dir / "history.parquet").to_pylist(),
    )


def worker_pids(run_dir: Path) -> set[int]:
    """The worker processes that reported any result, from Ray's result.json of each trial."""
    return {
        json.loads(line)["pid"]
        for f in run_dir.glob("*/result.json")
        for line in f.read_text().splitlines()
        if line.strip()
    }


def test_four_trial_study_end_to_end(ray_session, tmp_path):
    run_dir, rows, history = run(
        tmp_path,
        name="four",
        num_samples=4,
        data={"test_fraction": 0.1},
        search_space={
            "lr": {"type": "loguniform", "low": 1e-3, "high": 3e-2},
            "batch_size": {"type": "choice", "values": [32, 64]},
        },
    )
    assert len(rows) == 4
    assert {
        "trial_id",
        "config.lr",
        "config.batch_size",
        "val_loss",
        "val_acc",
        "epochs",
        "stop_reason",
        "checkpoint",
    } <= set(rows[0])
    assert all(r["stop_reason"] == "completed" and r["epochs"] == 3 for r in rows)
    for r in rows:  # each trial's best epoch, kept apart from Tune's checkpoints (best/)
        kept = Path(r["checkpoint"])
        assert kept.parent.name == "best" and kept.name == f"epoch_{r['best_epoch']:05d}"
        assert json.loads((kept / "meta.json").read_text())["epoch"] == r["best_epoch"]
    assert len(history) == 12 and {h["epoch"] for h in history} == {1, 2, 3}
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["n_trials"] == 4 and summary["stop_reasons"] == {"completed": 4}
    best = min(rows, key=lambda r: r["val_loss"])
    assert summary["best_trial_id"] == best["trial_id"]
    assert summary["best_val_loss"] == pytest.approx(best["val_loss"])
    assert "test_acc" in summary["test"]
    # The best model loads and predicts digits far better than chance.
    import tunepipe

    model = tunepipe.load_model(str(run_dir))
    x = pq.read_table(Path(tunepipe.__file__).parent / "data/builtin/digits.parquet")
    labels = x.column("label").to_numpy()
    feats = x.drop(["label"]).to_pandas().to_numpy()
    assert (model.predict(feats) == labels).mean() > 0.8
    assert (run_dir / "report.html").is_file()
    assert not list(run_dir.glob("*/events.out.tfevents*"))  # TensorBoard files only on request
    # The same study again: a new folder beside the first, which is left as it was.
    before = (run_dir / "results.parquet").read_bytes()
    trial_dirs = sorted(run_dir.glob("*/result.json"))
    again = parse_study(study_dict(name="four", scheduler={"max_epochs": 1}))
    second = run_study(again, storage=str(tmp_path), progress=False)
    assert Path(second.run_dir) == tmp_path / "four-2"
    assert (tmp_path / "four-2" / "results.parquet").is_file()
    assert len(list((tmp_path / "four-2").glob("*/result.json"))) == 1  # Ray's trials too
    assert (tmp_path / "four-2" / "tuner.pkl").is_file()
    assert (run_dir / "results.parquet").read_bytes() == before
    assert sorted(run_dir.glob("*/result.json")) == trial_dirs


def test_huge_learning_rate_diverges_within_three_reports(ray_session, tmp_path):
    # playbook P5: Adam at lr 10 reports finite losses near 1e5 that later fall; still divergence.
    from tunepipe.errors import StudyFailed

    study = parse_study(
        study_dict(
            name="div",
            train={"lr": 10.0},
            scheduler={"max_epochs": 10},
            playbook={"sanity": False},  # the sanity stage would stop it first: lr too high (P1)
            tensorboard=True,
        )
    )
    with pytest.raises(StudyFailed, match="no trial learned"):  # exit 1, results written
        run_study(study, storage=str(tmp_path), progress=False)
    run_dir = tmp_path / "div"
    rows = pq.read_table(run_dir / "results.parquet").to_pylist()
    assert (
        "no trial learned" in json.loads((run_dir / "summary.json").read_text())["nothing_learned"]
    )
    assert (run_dir / "report.html").is_file() and not (run_dir / "best_model").exists()
    assert rows[0]["stop_reason"] == "diverged"
    assert rows[0]["epochs"] <= 3
    assert list(run_dir.glob("*/events.out.tfevents*"))  # asked for: one trial, one file
    assert list(run_dir.glob("*/progress.csv")) and list(run_dir.glob("*/result.json"))


def noisy_classes(path: Path, n: int = 400, flip: float = 0.15) -> str:
    """Two classes split by the first feature, with a share of labels flipped: memorising the
    flipped ones is overfitting, so validation loss turns up while training loss still falls."""
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 10)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    flipped = rng.random(n) < flip
    y[flipped] = 1 - y[flipped]
    pq.write_table(pa.table({**{f"f{i}": x[:, i] for i in range(10)}, "label": y}), path)
    return str(path)


def test_overfitting_trial_stops_and_keeps_best_epoch_checkpoint(ray_session, tmp_path):
    # P6/E1: a wide MLP, noisy labels, no dropout: val loss turns up while train loss falls.
    source = noisy_classes(tmp_path / "noisy.parquet")
    run_dir, rows, history = run(
        tmp_path,
        name="overfit",
        data={"source": source, "val_fraction": 0.5},
        model={"hidden_width": 256, "depth": 2},
        train={"lr": 3e-3, "batch_size": 16},
        scheduler={"max_epochs": 60},
        stopping={"overfitting": {"patience": 3, "min_epochs": 3}, "plateau": None},
    )
    row = rows[0]
    assert row["stop_reason"] == "overfitting", row
    assert row["epochs"] < 60
    val = [h["val_loss"] for h in history]
    assert row["val_loss"] == pytest.approx(min(val))
    assert row["best_epoch"] == 1 + val.index(min(val)) < row["epochs"]
    meta = json.loads((Path(row["checkpoint"]) / "meta.json").read_text())
    assert meta["epoch"] == row["best_epoch"]  # the best epoch's weights were kept
    best_model = json.loads((run_dir / "best_model" / "meta.json").read_text())
    assert best_model["epoch"] == row["best_epoch"]
    # The decision is logged in the run folder, so a resumed study still knows why it stopped.
    logged = json.loads((run_dir / "decisions.json").read_text())[row["trial_id"]]
    assert logged["reason"] == "overfitting" and logged["best_epoch"] == row["best_epoch"]


def test_plateau_decays_lr_and_continues_from_checkpoint(ray_session, tmp_path):
    # P5/L1: at a tiny rate the loss barely moves; the rule halves lr and the trial goes on.
    with pytest.raises(StudyFailed, match="no trial learned.*too low") as failed:
        run(
            tmp_path,
            name="plateau",
            train={"lr": 1e-6, "optimizer": "sgd"},
            scheduler={"max_epochs": 12},
            playbook={"sanity": False},  # the sanity stage would stop it first: lr too low (P1)
            stopping={
                "plateau": {"patience": 2, "min_delta": 0.01, "factor": 0.5, "max_decays": 2},
                "overfitting": None,
            },
        )
    assert failed.value.exit_code == 1  # at such a rate it learns nothing; the outputs exist
    run_dir = tmp_path / "plateau"
    rows = pq.read_table(run_dir / "results.parquet").to_pylist()
    history = pq.read_table(run_dir / "history.parquet").to_pylist()
    lrs = [h["lr"] for h in history]
    epochs = [h["epoch"] for h in history]
    assert epochs == list(range(1, len(epochs) + 1))  # continued: no restart, no rolled-back epoch
    assert lrs[0] == pytest.approx(1e-6)
    assert any(b == pytest.approx(a * 0.5) for a, b in zip(lrs, lrs[1:], strict=False)), lrs
    assert rows[0]["lr_decays"] >= 1
    assert rows[0]["stop_reason"] == "plateau"
    assert rows[0]["config.lr"] == pytest.approx(1e-6)  # the sampled rate, not the decayed one
    # The search had no new trial left when it paused: tunepipe_schedulers.search kept its actor,
    # so it resumed in the same worker process instead of a freshly started one.
    assert len(worker_pids(run_dir)) == 1


def test_pbt_exploits_restore_existing_checkpoints_and_results_show_the_last_config(
    ray_session, tmp_path
):
    run_dir, rows, history = run(
        tmp_path,
        name="pbt",
        num_samples=4,
        search_space={
            "lr": {"type": "loguniform", "low": 1e-4, "high": 1e-1},
            "momentum": {"type": "uniform", "low": 0.8, "high": 0.95},
        },
        scheduler={"kind": "pbt", "max_epochs": 8, "perturbation_interval": 2},
        stopping={"divergence": None, "overfitting": None},
    )
    assert len(rows) == 4
    assert all(r["stop_reason"] == "completed" for r in rows)  # none `error`: clones exist
    assert all(math.isfinite(h["val_loss"]) for h in history)
    decisions = json.loads((run_dir / "decisions.json").read_text())
    exploits = {t: d["exploits"] for t, d in decisions.items() if d.get("exploits")}
    assert exploits, decisions
    ids = {r["trial_id"] for r in rows}
    for trial, steps in exploits.items():
        assert all(e["from"] in ids and e["from"] != trial and e["changed"] for e in steps)
    for row in rows:  # config.* is what the trial ran last: the lr of its last epoch
        last = max(
            (h for h in history if h["trial_id"] == row["trial_id"]), key=lambda h: h["epoch"]
        )
        assert row["config.lr"] == pytest.approx(last["lr"]), (row, last)
        if row["trial_id"] in exploits:
            final = exploits[row["trial_id"]][-1]["changed"]
            assert row["config.lr"] == pytest.approx(final.get("lr", [None, row["config.lr"]])[1])


def test_storage_uri_through_pyarrow_filesystems(ray_session, tmp_path):
    # Storage is any URI pyarrow's filesystems open, from the start; file:// is the one we can
    # reach here, and it takes the same code path as object stores (RunLocation over a pyarrow fs).
    import tunepipe

    study = parse_study(study_dict(name="uri", scheduler={"max_epochs": 2}))
    out = run_study(study, storage=f"file://{tmp_path}/store", progress=False)
    assert out.run_dir == f"file://{tmp_path}/store/uri"
    rows = pq.read_table(tmp_path / "store/uri/results.parquet").to_pylist()
    assert rows[0]["stop_reason"] == "completed" and rows[0]["epochs"] == 2
    assert tunepipe.load_model(out.run_dir).task == "classification"
