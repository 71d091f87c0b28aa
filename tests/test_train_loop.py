"""The trainable without Ray: run_trial on tiny tensors with a recording `report`, checkpoints,
resuming, divergence (P5), regression RMSE in the targets' units (P2), and load_model."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tunepipe.data.prepare import prepare_arrays, split_indices
from tunepipe.models import build_model
from tunepipe.predict import load_model
from tunepipe.study import parse_study
from tunepipe.train import checkpoint as ckpt
from tunepipe.train.loop import run_trial

DIAGNOSTICS = {"grad_norm", "update_ratio", "dead_relu"}  # tunepipe.train.diagnostics (+ top_prob)
CLASSIFICATION_KEYS = {"epoch", "train_loss", "val_loss", "val_acc", "lr", "lr_decays"}
CLASSIFICATION_KEYS |= DIAGNOSTICS | {"top_prob"}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: a second thread only adds contention on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class Recorder:
    """A fake `report`: keeps the metrics and a copy of each checkpoint (run_trial deletes its)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.metrics: list[dict] = []
        self.checkpoints: dict[int, Path] = {}

    def __call__(self, metrics: dict, checkpoint_dir: str | None) -> None:
        self.metrics.append(dict(metrics))
        if checkpoint_dir is not None:
            copy = self.folder / f"checkpoint_{metrics['epoch']:06d}"
            shutil.copytree(checkpoint_dir, copy)
            self.checkpoints[metrics["epoch"]] = copy

    def column(self, key: str) -> list:
        return [m[key] for m in self.metrics]


def study(task="classification", max_epochs=4, train=None, model=None, data=None, **top):
    raw = {
        "name": "toy",
        "seed": 3,
        "task": task,
        "data": {"source": "toy.parquet", "label": "y", **(data or {})},
        "model": {"kind": "mlp", "hidden_width": 16, "depth": 1, **(model or {})},
        "train": {"batch_size": 32, "lr": 0.01, **(train or {})},
        "scheduler": {"kind": "fifo", "max_epochs": max_epochs, "grace_period": 1},
        **top,
    }
    if task == "regression":
        raw["metric"] = "val_rmse"
    return parse_study(raw)


def blobs(n=240, classes=(0, 1, 2), seed=0):
    """Three well separated Gaussian blobs in 4 dimensions: learnable in a few epochs."""
    rng = np.random.default_rng(seed)
    y = np.asarray(classes, dtype=np.float64)[np.arange(n) % len(classes)]
    centres = rng.normal(0, 3, size=(len(classes), 4))
    x = centres[np.arange(n) % len(classes)] + rng.normal(size=(n, 4))
    return (x * 10 + 50).astype(np.float32), y  # raw units far from 0: normalisation matters


def prepared(s, x, y):
    return prepare_arrays(x, y, s.data, s.task, s.seed)


def train(tmp_path, s, data, config=None, restore_from=None, name="run") -> Recorder:
    rec = Recorder(tmp_path / name)
    rec.folder.mkdir()
    rec.reason = run_trial(config or {}, data, s, rec, restore_from=restore_from)
    return rec


# ---------------------------------------------------------------- a learnable toy problem


def test_loss_falls_and_every_epoch_reports_the_metrics(tmp_path):
    s = study(max_epochs=6)
    rec = train(tmp_path, s, prepared(s, *blobs()))
    assert rec.reason == "completed"
    assert rec.column("epoch") == [1, 2, 3, 4, 5, 6]
    assert all(set(m) == CLASSIFICATION_KEYS for m in rec.metrics)
    assert rec.column("lr") == [0.01] * 6
    losses = rec.column("train_loss")
    assert losses[-1] < 0.5 * losses[0]
    assert rec.column("val_loss")[-1] < rec.column("val_loss")[0]
    assert rec.column("val_acc")[-1] >= 0.9


def needed_epochs(val_losses: list[float], last: int) -> set[int]:
    """The epochs a decision can need: each new best, each plateau decay, the last."""
    from tunepipe_schedulers.rules import PlateauRule, PlateauState

    rule, state, best, out = PlateauRule(), PlateauState(), float("inf"), {last}
    for epoch, v in enumerate(val_losses, start=1):
        if rule.check(state, v) is not None or v < best:
            out.add(epoch)
        best = min(best, v)
    return out


def test_checkpoints_where_decisions_need_them_and_every_n_when_asked(tmp_path):
    s = study(max_epochs=3)
    rec = train(tmp_path, s, prepared(s, *blobs(60)))
    assert set(rec.checkpoints) == needed_epochs(rec.column("val_loss"), 3)
    assert 3 in rec.checkpoints
    state, meta = ckpt.load(rec.checkpoints[3])
    assert state["epoch"] == meta["epoch"] == 3
    assert meta["model"]["kind"] == "mlp" and meta["task"] == "classification"
    assert meta["input_shape"] == [4] and meta["output_dim"] == 3
    assert meta["checkpoint_policy"]["epoch"] == 3

    # A rate too high to keep improving: plateaus and worse epochs get no checkpoint by default.
    s = study(max_epochs=12, train={"optimizer": "sgd", "lr": 3.0, "grad_clip": 1.0})
    rec = train(tmp_path, s, prepared(s, *blobs(60)), name="noisy")
    needed = needed_epochs(rec.column("val_loss"), 12)
    assert set(rec.checkpoints) == needed and len(needed) < 12  # some epochs were skipped
    every2 = study(
        max_epochs=12,
        train={"optimizer": "sgd", "lr": 3.0, "grad_clip": 1.0, "checkpoint_every": 2},
    )
    rec2 = train(tmp_path, every2, prepared(every2, *blobs(60)), name="every2")
    got = sorted(rec2.checkpoints)
    assert needed <= set(got) and got[0] <= 2  # and never more than 2 epochs apart
    assert all(b - a <= 2 for a, b in zip(got, got[1:], strict=False))


@pytest.mark.parametrize("metric", ["val_loss", "val_acc"])
def test_best_weights_kept_apart_at_each_new_best_of_the_metric(tmp_path, metric):
    # tunepipe's Ray trainable passes keep_best: each new best of the study's metric goes to the
    # trial's best/ folder, and the reported checkpoints are only those decisions and resume need.
    s = study(
        max_epochs=12,
        # val_loss: a rate too high, bests come and go; val_acc: a slow climb, 0.33 to 1.0
        train={"optimizer": "sgd", "lr": 3.0, "grad_clip": 1.0}
        if metric == "val_loss"
        else {"optimizer": "adam", "lr": 0.003},
        metric=metric,
        mode="min" if metric == "val_loss" else "max",
    )
    data = prepared(s, *blobs(60))
    rec, kept = Recorder(tmp_path / "rec"), []
    rec.folder.mkdir()

    def keep_best(folder: str, epoch: int) -> None:
        kept.append(epoch)
        ckpt.keep_best(folder, epoch, str(tmp_path / "trial"))

    run_trial({}, data, s, rec, keep_best=keep_best)
    values = rec.column(metric)
    sign = 1 if metric == "val_loss" else -1
    bests = [
        e for e, v in enumerate(values, 1) if all(sign * v < sign * u for u in values[: e - 1])
    ]
    assert kept == bests and len(bests) > 1
    # Reported: the last epoch and the plateau pauses, not the new bests as such.
    plateau = needed_epochs(rec.column("val_loss"), 12) - {
        e
        for e, v in enumerate(rec.column("val_loss"), 1)
        if v < min(rec.column("val_loss")[: e - 1], default=math.inf)
    }
    assert set(rec.checkpoints) <= plateau | {12} and 12 in rec.checkpoints
    # One folder is left: the best epoch's, whose weights give the best value again.
    folder = ckpt.best_in(tmp_path / "trial")
    assert [p.name for p in (tmp_path / "trial" / ckpt.BEST_DIR).iterdir()] == [
        f"epoch_{bests[-1]:05d}"
    ]
    state, meta = ckpt.load(folder)
    assert state["epoch"] == meta["epoch"] == bests[-1]
    assert meta["metrics"][metric] == pytest.approx(values[bests[-1] - 1])
    run_dir = tmp_path / "runs" / "toy"
    shutil.copytree(folder, run_dir / "best_model")  # as the run's outputs copy it
    from tunepipe.models import task_head
    from tunepipe.train.loop import evaluate

    head = task_head(s.task)
    val = (torch.from_numpy(data.val.x), torch.from_numpy(data.val.y))
    again = evaluate(load_model(str(run_dir)).model, head, head.loss_fn(), *val, data)
    assert again[metric] == pytest.approx(values[bests[-1] - 1], rel=1e-5)


def test_sampled_config_overrides_the_study(tmp_path):
    s = study(max_epochs=1)
    rec = train(tmp_path, s, prepared(s, *blobs(60)), config={"lr": 0.002, "hidden_width": 8})
    assert rec.column("lr") == [0.002]
    state, meta = ckpt.load(rec.checkpoints[1])
    assert meta["model"]["args"]["hidden_width"] == 8
    assert state["model"]["1.0.weight"].shape == (8, 4)


# ---------------------------------------------------------------- divergence (P5)


def test_huge_learning_rate_diverges_without_raising(tmp_path):
    s = study(max_epochs=5, train={"optimizer": "sgd", "lr": 1e6})
    rec = train(tmp_path, s, prepared(s, *blobs()))
    assert rec.reason == "diverged"
    last = rec.metrics[-1]
    assert last["stop_reason"] == "diverged"
    assert not (math.isfinite(last["train_loss"]) and math.isfinite(last["val_loss"]))
    assert len(rec.metrics) < 5  # it stopped at once
    assert last["epoch"] not in rec.checkpoints  # a diverged model is not checkpointed


# ---------------------------------------------------------------- resuming


def test_resume_continues_at_the_next_epoch_identically(tmp_path):
    # dropout and Adam: the torch RNG, the shuffle generator and the optimizer state must all resume
    data_xy = blobs()
    full_study = study(max_epochs=4, model={"dropout": 0.3})
    data = prepared(full_study, *data_xy)
    full = train(tmp_path, full_study, data, name="full")

    first = train(tmp_path, study(max_epochs=2, model={"dropout": 0.3}), data, name="first")
    assert first.metrics == full.metrics[:2]
    resumed = train(tmp_path, full_study, data, restore_from=first.checkpoints[2], name="resumed")
    assert resumed.column("epoch") == [3, 4]
    assert resumed.metrics == full.metrics[2:]  # exactly equal, not approximately


def test_resume_from_the_last_epoch_reports_it_once_more_and_trains_nothing(tmp_path):
    # The driver died after the final checkpoint reached storage but before its report did.
    s = study(max_epochs=3)
    data = prepared(s, *blobs(60))
    done = train(tmp_path, s, data, name="done")
    again = train(tmp_path, s, data, restore_from=done.checkpoints[3], name="again")
    assert again.reason == "completed"
    assert again.metrics == [done.metrics[-1]] and again.checkpoints == {}


def test_resume_applies_a_changed_learning_rate(tmp_path):
    s = study(max_epochs=4)
    data = prepared(s, *blobs())
    full = train(tmp_path, s, data, name="full")
    first = train(tmp_path, study(max_epochs=2), data, name="first")
    decayed = train(
        tmp_path, s, data, config={"lr": 0.001}, restore_from=first.checkpoints[2], name="decayed"
    )
    assert decayed.column("epoch") == [3, 4]
    assert decayed.column("lr") == [0.001, 0.001]
    state, _ = ckpt.load(decayed.checkpoints[3])
    assert state["optimizer"]["param_groups"][0]["lr"] == 0.001
    assert decayed.column("train_loss") != full.column("train_loss")[2:]


# ---------------------------------------------------------------- regression: RMSE in own units


def regression_xy(n=160, scale=1.0, offset=0.0):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    y = np.column_stack([x @ [1.0, -2.0, 0.5], x[:, 0] * x[:, 1]]) + rng.normal(0, 0.1, (n, 2))
    return x, (y * scale + offset).astype(np.float32)


def raw_split(s, n, strata=None):
    """The rows prepare_arrays put in each split (its documented seeded split)."""
    return split_indices(
        n, s.data.val_fraction, s.data.test_fraction, np.random.default_rng(s.seed), strata=strata
    )


def test_regression_reports_val_rmse_in_the_targets_units(tmp_path):
    s = study("regression", max_epochs=3, data={"label": ["u", "v"]})
    x, y = regression_xy(scale=np.array([1000.0, 1.0]), offset=np.array([5000.0, -2.0]))
    data = prepared(s, x, y)
    rec = train(tmp_path, s, data)
    assert all(
        set(m) == {"epoch", "train_loss", "val_loss", "val_rmse", "lr", "lr_decays"} | DIAGNOSTICS
        for m in rec.metrics
    )

    # by hand: the epoch-3 model's predictions back in target units against the raw targets
    state, meta = ckpt.load(rec.checkpoints[3])
    model = build_model(meta["model"], tuple(meta["input_shape"]), meta["output_dim"])
    model.load_state_dict(state["model"])
    model.eval()
    _, val_idx, _ = raw_split(s, len(x))
    np.testing.assert_allclose(
        (x[val_idx] - data.feature_mean) / data.feature_std, data.val.x, rtol=1e-5, atol=1e-5
    )
    with torch.no_grad():
        out = model(torch.from_numpy(data.val.x)).numpy()
    predicted = out * data.target_std + data.target_mean
    expected = math.sqrt(float(np.mean((predicted - y[val_idx]) ** 2)))
    assert rec.metrics[-1]["val_rmse"] == pytest.approx(expected, rel=1e-4)
    assert expected > 10  # the 1000-scale target dominates: the units are not standardised ones


def test_regression_rmse_scales_with_the_targets_and_the_loss_does_not(tmp_path):
    s = study("regression", max_epochs=2, data={"label": ["u", "v"]})
    x, y = regression_xy()
    small = train(tmp_path, s, prepared(s, x, y), name="small")
    big = train(tmp_path, s, prepared(s, x, y * 1000 + 7), name="big")
    # standardised targets: the same training, the loss identical, the RMSE 1000 times larger
    for a, b in zip(small.metrics, big.metrics, strict=True):
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-3)
        assert b["val_rmse"] == pytest.approx(1000 * a["val_rmse"], rel=1e-3)


# ---------------------------------------------------------------- checkpoint.newest_in


def make_checkpoint(folder: Path, files=(ckpt.STATE_FILE, ckpt.META_FILE), epoch: int = 1) -> str:
    folder.mkdir(parents=True)
    for name in files:
        (folder / name).write_text(json.dumps({"epoch": epoch}) if name == ckpt.META_FILE else "x")
    return str(folder)


def test_newest_in_picks_the_highest_numbered_complete_checkpoint(tmp_path):
    make_checkpoint(tmp_path / "checkpoint_000001")
    make_checkpoint(tmp_path / "checkpoint_9")
    best = make_checkpoint(tmp_path / "checkpoint_000010")  # numbers, not text: 10 > 9
    make_checkpoint(tmp_path / "checkpoint_000011", files=(ckpt.STATE_FILE,))  # incomplete
    make_checkpoint(tmp_path / "checkpoint_000012", files=(ckpt.META_FILE,))  # incomplete
    make_checkpoint(tmp_path / "checkpoint_000013", files=())  # still being written
    make_checkpoint(tmp_path / "checkpoint_final")  # not numbered
    make_checkpoint(tmp_path / "old_checkpoint_000099")
    (tmp_path / "checkpoint_000050").write_text("a file, not a folder")
    assert ckpt.newest_in(tmp_path) == best
    assert ckpt.newest_in(str(tmp_path)) == best


def test_newest_in_counts_the_best_weights_kept_apart_when_newer(tmp_path):
    # A trial stopped by an interrupt or a time budget resumes from its latest best (best/ is a
    # full checkpoint), as it did when every new best was a reported checkpoint.
    make_checkpoint(tmp_path / "checkpoint_000001", epoch=2)
    kept = make_checkpoint(tmp_path / ckpt.BEST_DIR / "epoch_00005", epoch=5)
    make_checkpoint(tmp_path / ckpt.BEST_DIR / "epoch_00007", files=(ckpt.STATE_FILE,))  # cut
    assert ckpt.best_in(tmp_path) == kept and ckpt.newest_in(tmp_path) == kept
    same = make_checkpoint(tmp_path / "checkpoint_000002", epoch=5)  # a tie: the checkpoint
    assert ckpt.newest_in(tmp_path) == same
    later = make_checkpoint(tmp_path / "checkpoint_000003", epoch=6)
    assert ckpt.newest_in(tmp_path) == later


def test_newest_in_prefers_the_latest_epoch_over_the_folder_number(tmp_path):
    # After a restore Ray numbers checkpoints from its last snapshot: checkpoint_000002 may be
    # rewritten with epoch 5 while checkpoint_000003 still holds epoch 4.
    make_checkpoint(tmp_path / "checkpoint_000003", epoch=4)
    later = make_checkpoint(tmp_path / "checkpoint_000002", epoch=5)
    assert ckpt.newest_in(tmp_path) == later
    assert ckpt.checkpoint_epoch(later) == 5


def test_newest_in_with_nothing_to_resume(tmp_path):
    assert ckpt.newest_in(None) is None
    assert ckpt.newest_in(tmp_path / "missing") is None
    assert ckpt.newest_in(tmp_path) is None
    make_checkpoint(tmp_path / "checkpoint_000003", files=(ckpt.STATE_FILE,))
    assert ckpt.newest_in(tmp_path) is None


def test_checkpoint_round_trip_restores_the_weights(tmp_path):
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    gen = torch.Generator().manual_seed(9)
    ckpt.save(tmp_path / "c", model=net, optimizer=opt, epoch=7, rng=gen, meta={"task": "x"})
    state, meta = ckpt.load(tmp_path / "c")
    assert meta == {"task": "x", "epoch": 7}
    assert json.loads((tmp_path / "c" / ckpt.META_FILE).read_text())["epoch"] == 7
    torch.testing.assert_close(state["model"]["weight"], net.weight.detach())
    restored = torch.Generator()
    restored.set_state(state["rng"])
    assert torch.equal(torch.randperm(10, generator=restored), torch.randperm(10, generator=gen))


# ---------------------------------------------------------------- load_model on a run folder


def test_load_model_predicts_what_the_trial_measured(tmp_path):
    s = study(max_epochs=3, data={"classes": [2, 5, 9]})
    x, y = blobs(classes=(2, 5, 9))
    data = prepared(s, x, y)
    rec = train(tmp_path, s, data)
    run_dir = tmp_path / "runs" / "toy-20260101"
    run_dir.mkdir(parents=True)
    shutil.copytree(rec.checkpoints[3], run_dir / "best_model")

    loaded = load_model(str(run_dir))
    assert loaded.task == "classification"
    _, val_idx, _ = split_indices(
        len(x), 0.2, 0.0, np.random.default_rng(s.seed), strata=np.searchsorted([2, 5, 9], y)
    )
    np.testing.assert_allclose(
        (x[val_idx] - data.feature_mean) / data.feature_std, data.val.x, rtol=1e-5, atol=1e-5
    )
    predicted = loaded.predict(x[val_idx])  # raw rows in, declared class ids out
    assert set(predicted.tolist()) <= {2, 5, 9}
    assert float(np.mean(predicted == y[val_idx])) == pytest.approx(rec.metrics[-1]["val_acc"])
    # the same classes as the network itself on the normalised split
    with torch.no_grad():
        direct = loaded.model(torch.from_numpy(data.val.x)).argmax(-1).numpy()
    np.testing.assert_array_equal(predicted, np.array([2, 5, 9])[direct])
    proba = loaded.predict_proba(x[val_idx])
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)


def test_load_model_regression_predicts_in_target_units(tmp_path):
    s = study("regression", max_epochs=2, data={"label": ["u", "v"]})
    x, y = regression_xy(scale=np.array([1000.0, 1.0]), offset=np.array([5000.0, -2.0]))
    rec = train(tmp_path, s, prepared(s, x, y))
    shutil.copytree(rec.checkpoints[2], tmp_path / "run" / "best_model")
    loaded = load_model(str(tmp_path / "run"))
    _, val_idx, _ = raw_split(s, len(x))
    predicted = loaded.predict(x[val_idx])
    rmse = math.sqrt(float(np.mean((predicted - y[val_idx]) ** 2)))
    assert rmse == pytest.approx(rec.metrics[-1]["val_rmse"], rel=1e-4)


def test_load_model_on_a_folder_without_best_model(tmp_path):
    from tunepipe.errors import RunDirError

    with pytest.raises(RunDirError, match="no best_model/"):
        load_model(str(tmp_path))


def test_binary_task_trains_and_predicts_zero_or_one(tmp_path):
    s = study("binary", max_epochs=2)
    x, y = blobs(classes=(0, 1))
    rec = train(tmp_path, s, prepared(s, x, y))
    assert set(rec.metrics[-1]) == CLASSIFICATION_KEYS
    shutil.copytree(rec.checkpoints[2], tmp_path / "run" / "best_model")
    _, val_idx, _ = raw_split(s, len(x), strata=y)  # binary splits are stratified too
    predicted = load_model(str(tmp_path / "run")).predict(x[val_idx])
    assert predicted.shape == (len(val_idx),) and set(predicted.tolist()) <= {0, 1}
    assert float(np.mean(predicted == y[val_idx])) == pytest.approx(rec.metrics[-1]["val_acc"])


def test_predict_takes_one_flat_row_as_a_batch_of_one(tmp_path):
    s = study("classification", max_epochs=1)
    x, y = blobs()
    rec = train(tmp_path, s, prepared(s, x, y))
    shutil.copytree(rec.checkpoints[1], tmp_path / "run" / "best_model")
    model = load_model(str(tmp_path / "run"))
    assert model.predict(x[0]).shape == (1,)
    assert model.predict(x[0])[0] == model.predict(x[:1])[0]
    with pytest.raises(ValueError, match="feature values"):
        model.predict(x[:, :-1])


def test_optimizers_are_torchs_fused_ones_with_a_fallback(monkeypatch):
    from tunepipe.train.loop import Hyper, make_optimizer

    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    hp = Hyper("adam", lr=0.01, momentum=0.9, weight_decay=0.0, batch_size=8, grad_clip=None)
    for name, cls in (("adam", torch.optim.Adam), ("sgd", torch.optim.SGD)):
        opt = make_optimizer(model, Hyper(**{**hp.__dict__, "optimizer": name}))
        assert isinstance(opt, cls) and opt.defaults["fused"] is True
    # The same update as the loop implementation (what fused promises), over a few steps.
    x, y = torch.randn(16, 4), torch.randint(0, 2, (16,))
    results = []
    for fused in (True, False):
        torch.manual_seed(0)
        m = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
        opt = torch.optim.Adam(m.parameters(), lr=0.01, fused=fused)
        for _ in range(5):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(m(x), y).backward()
            opt.step()
        results.append(torch.cat([p.detach().flatten() for p in m.parameters()]))
    assert torch.allclose(results[0], results[1], atol=1e-6)
    real = torch.optim.Adam  # where the fused kernels do not apply, the plain one is used

    def no_fused(params, fused=None, **kwargs):
        if fused:
            raise RuntimeError("`fused=True` requires all the params to be floating point")
        return real(params, **kwargs)

    monkeypatch.setattr(torch.optim, "Adam", no_fused)
    assert not make_optimizer(model, hp).defaults.get("fused")
