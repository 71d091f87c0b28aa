"""The case study in training: flips on training batches only, init_from, specialists, and the
comparison table (tiny tensors and hand-made run folders; no Ray)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from tests.conftest import tunepipe_cli
from tunepipe.config import DataConfig
from tunepipe.data import prepare_arrays
from tunepipe.errors import RunDirError
from tunepipe.models import build_model
from tunepipe.study import parse_study
from tunepipe.train import checkpoint as ckpt
from tunepipe.train.loop import run_trial
from tunepipe.train.pretrained import load_pretrained, match_state

SEEN: dict[str, list[torch.Tensor]] = {"train": [], "eval": []}
LABELS = ["left_eye_center_x", "left_eye_center_y", "right_eye_center_x", "right_eye_center_y"]


class Recorder(nn.Module):
    """A tiny regressor that keeps every input it is shown, by mode."""

    def __init__(self, input_shape, output_dim):
        super().__init__()
        self.head = nn.Linear(int(np.prod(input_shape)), output_dim)

    def forward(self, x):
        SEEN["train" if self.training else "eval"].append(x.detach().clone())
        return self.head(x.flatten(1))


def recorder(input_shape, output_dim):
    return Recorder(input_shape, output_dim)


def _study(**kw):
    raw = {
        "name": "kp",
        "task": "regression",
        "data": {
            "source": "unused.parquet",
            "image_shape": [1, 6, 6],
            "label": LABELS,
            "augment": {"hflip": {"swap": [["left_eye_center", "right_eye_center"]]}},
        },
        "model": {"kind": "custom", "factory": "tests.test_keypoints_training:recorder"},
        "train": {"batch_size": 8},
        "scheduler": {"kind": "fifo", "max_epochs": 3},
        **kw,
    }
    return parse_study(raw)


def _data(study, n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, (n, 36)).astype(np.float32)  # no image is its own mirror
    y = rng.uniform(0, 5, (n, 4)).astype(np.float32)
    return prepare_arrays(x, y, study.data, "regression", study.seed)


def test_flips_touch_training_batches_and_never_validation_batches():
    import importlib

    study = _study()
    data = _data(study)
    # The factory's module as run_trial imports it (pytest may hold this file under another name).
    seen_by = importlib.import_module("tests.test_keypoints_training").SEEN
    seen_by["train"].clear()
    seen_by["eval"].clear()
    run_trial({}, data, study, lambda m, c: None)
    val = torch.from_numpy(data.val.x)
    evals = torch.cat(seen_by["eval"])
    assert len(evals) == 3 * len(val)  # every epoch scores the validation split once
    for rows in seen_by["eval"]:
        assert torch.equal(rows, val)  # as stored, in order, never mirrored
    train = torch.from_numpy(data.train.x).flatten(1)
    seen = torch.cat(seen_by["train"])
    as_is = (seen.flatten(1)[:, None] == train[None]).all(-1).any(-1)
    mirrored = (seen.flip(-1).flatten(1)[:, None] == train[None]).all(-1).any(-1)
    assert (as_is | mirrored).all()  # every training input is a row of the data, or its mirror
    assert 0.3 < mirrored.float().mean() < 0.7  # about half of each batch flipped


def _save_run(folder, model, shape, out):
    ckpt.save(
        folder / "best_model",
        model=model,
        optimizer=None,
        epoch=1,
        rng=None,
        meta={"model": {}, "input_shape": list(shape), "output_dim": out},
    )
    return folder


def test_init_from_loads_matching_layers_and_lists_the_fresh_ones(tmp_path):
    cnn = {"kind": "cnn", "args": {"channels": [4, 8], "fc_width": 16}}
    torch.manual_seed(0)
    old = build_model(cnn, (1, 8, 8), 30)
    _save_run(tmp_path / "net6", old, (1, 8, 8), 30)
    for outputs in (30, 4):  # net7 from net6; a 4-keypoint specialist from net6
        new = build_model(cnn, (1, 8, 8), outputs)
        transfer = load_pretrained(new, tmp_path / "net6")
        state, old_state = new.state_dict(), old.state_dict()
        for name in transfer.loaded:
            assert torch.equal(state[name], old_state[name])
        if outputs == 30:
            assert transfer.fresh == []
        else:  # only the output layer differs: it starts fresh
            assert transfer.fresh == ["7.weight", "7.bias"]
            assert "shape [30, 16] there, [4, 16] here" in transfer.first_mismatch
            assert not torch.equal(state["7.weight"][:4], old_state["7.weight"][:4])


def test_init_from_refuses_a_run_with_nothing_matching(tmp_path):
    mlp = build_model({"kind": "mlp", "args": {"hidden_width": 8, "depth": 1}}, (1, 8, 8), 30)
    _save_run(tmp_path / "other", mlp, (1, 8, 8), 30)
    cnn = build_model({"kind": "cnn", "args": {"channels": [4]}}, (1, 8, 8), 30)
    assert match_state(cnn, mlp.state_dict()).loaded == []
    with pytest.raises(RunDirError, match=r"first mismatch: 0\.0\.weight: not in the run"):
        load_pretrained(cnn, tmp_path / "other")
    with pytest.raises(RunDirError, match="no best_model/state.pt"):
        load_pretrained(cnn, tmp_path)


def test_run_with_init_from_of_another_shape_exits_2(tmp_path):
    from tunepipe.data.faces import make_faces
    from tunepipe.data.keypoints import COLUMNS, to_parquet, write_kaggle_csv

    images, coords = make_faces(30, 8, seed=0)
    write_kaggle_csv(tmp_path / "f.csv", images, coords)
    to_parquet(tmp_path / "f.csv", tmp_path / "f.parquet")
    other = build_model({"kind": "mlp", "args": {"hidden_width": 8, "depth": 1}}, (1, 8, 8), 30)
    _save_run(tmp_path / "runs" / "other", other, (1, 8, 8), 30)
    study = {
        "name": "pre",
        "task": "regression",
        "data": {
            "source": "f.parquet",
            "image_column": "image",
            "image_shape": [1, 8, 8],
            "label": list(COLUMNS),
            "missing_labels": "mask",
        },
        "model": {"kind": "cnn", "channels": [4]},
        "train": {"batch_size": 4},
        "init_from": "runs/other",
        "storage": "runs",
    }
    (tmp_path / "pre.yaml").write_text(json.dumps(study))
    result = tunepipe_cli("run", "pre.yaml", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert (
        "init_from: nothing in" in result.stderr and "first mismatch: 0.0.weight" in result.stderr
    )
    assert "Traceback" not in result.stderr


def test_initial_loss_check_does_not_call_a_pretrained_start_a_bug(tmp_path):
    from tunepipe.playbook.init_loss import initial_loss_check
    from tunepipe.playbook.trial import set_up

    raw = {"data": {"source": "x.parquet", "label": LABELS}, "model": {"kind": "mlp"}}
    base = _study(**raw)
    data = _data(base)
    start = set_up(base, data, {})
    for p in start.model.parameters():  # a "trained" net: predicts about the mean at once
        nn.init.zeros_(p)
    _save_run(tmp_path / "net6", start.model, data.input_shape, 4)
    pre = base.model_copy(update={"init_from": str(tmp_path / "net6")})
    check = initial_loss_check(set_up(pre, data, {}), data, pre.data, pretrained=True)
    assert check.status == "pass" and "pre-trained start" in check.detail


def test_specialist_studies_take_their_group_rows_flips_and_start():
    from tunepipe.specialists import group_study

    swap = [["left_eye_center", "right_eye_center"], ["mouth_left_corner", "mouth_right_corner"]]
    labels = [*LABELS, "nose_tip_x", "nose_tip_y"]
    study = _study(
        data={
            "source": "f.parquet",
            "image_shape": [1, 6, 6],
            "label": labels,
            "augment": {"hflip": {"swap": swap}},
        },
        specialists={
            "patience": 7,
            "init_from": "runs/net6",
            "groups": {
                "eyes": {"labels": ["right_eye_center", "left_eye_center"], "max_epochs": 2},
                "nose": {"labels": ["nose_tip_y"], "patience": 3, "init_from": "runs/net7"},
            },
        },
    )
    eyes, nose = group_study(study, "eyes", "runs/s"), group_study(study, "nose", "runs/s")
    assert eyes.data.labels == LABELS  # the study's order, x and y of each keypoint
    assert eyes.data.missing_labels == "drop"  # every row that has the whole group
    assert eyes.data.augment.hflip.swap == [["left_eye_center", "right_eye_center"]]
    assert eyes.stopping.overfitting.patience == 7 and eyes.scheduler.max_epochs == 2
    assert eyes.init_from == "runs/net6" and eyes.specialists is None
    assert nose.data.labels == ["nose_tip_y"] and nose.data.augment.hflip.swap == []
    assert nose.stopping.overfitting.patience == 3 and nose.init_from == "runs/net7"


def test_combined_specialists_predict_every_label_in_order():
    from tunepipe.specialists import CombinedModel, combined_rmse

    class Part:
        def __init__(self, value, k):
            self.value, self.k = value, k

        def predict(self, x):
            return np.full((len(x), self.k), self.value)

    model = CombinedModel(["a", "b", "c"], [([2], Part(5.0, 1)), ([0, 1], Part(1.0, 2))], {})
    np.testing.assert_array_equal(model.predict(np.zeros((2, 9))), [[1, 1, 5], [1, 1, 5]])
    groups = {"g1": {"val_rmse": 1.0, "val_values": 30}, "g2": {"val_rmse": 3.0, "val_values": 10}}
    assert combined_rmse(groups) == pytest.approx(np.sqrt((30 + 90) / 40))


def _fake_run(folder, name, val_losses, rmse):
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({"study": name, "best_trial_id": "t"}))
    n = len(val_losses)
    pd.DataFrame(
        {
            "trial_id": ["t"] * n,
            "epoch": range(1, n + 1),
            "train_loss": [v * 0.5 for v in val_losses],
            "val_loss": val_losses,
            "val_rmse": rmse,
        }
    ).to_parquet(folder / "history.parquet")
    return str(folder)


def test_compare_prints_the_playbooks_table_and_one_plot(tmp_path):
    from tunepipe.report.compare import compare_report

    a = _fake_run(tmp_path / "net1", "kp-net1", [0.01, 0.004, 0.0033, 0.0035], 3.1)
    b = _fake_run(tmp_path / "net2", "kp-net2", [0.01, 0.002, 0.0016], 2.0)
    text = compare_report([a, b], None, tmp_path / "curves.png")
    lines = text.splitlines()
    cells = [[c.strip() for c in line.split("|")] for line in lines[:4]]
    assert cells[0][:5] == ["net", "epochs", "train loss", "valid loss", "valid RMSE"]
    assert cells[2] == ["kp-net1", "4", "0.001650", "0.003300", "3.1000"]  # at the best epoch
    assert "kp-net2 | 3" in lines[3] and "0.001600" in lines[3]
    assert (tmp_path / "curves.png").stat().st_size > 5000
    with pytest.raises(RunDirError, match="no summary.json"):  # exit 2 from the CLI
        compare_report([tmp_path / "nope", a], None, tmp_path / "x.png")


def test_data_config_needs_images_to_flip():
    with pytest.raises(ValueError, match="augment.hflip flips images"):
        DataConfig(source="x", label="y", augment={"hflip": {"swap": []}})


def test_predictions_come_back_in_pixels(tmp_path):
    from tunepipe.predict import load_model

    study = _study(
        data={"source": "x.parquet", "image_shape": [1, 6, 6], "label": LABELS, "scale": "range"},
        model={"kind": "mlp", "depth": 1, "hidden_width": 4},
    )
    data = _data(study)
    model = build_model({"kind": "mlp", "args": {"depth": 1, "hidden_width": 4}}, (1, 6, 6), 4)
    for p in model.parameters():  # outputs 0: the middle of [-1, 1] in every coordinate
        nn.init.zeros_(p)
    meta = {
        "model": {"kind": "mlp", "args": {"depth": 1, "hidden_width": 4}},
        "input_shape": [1, 6, 6],
        "output_dim": 4,
        "task": "regression",
        "data_stats": data.stats(),
    }
    ckpt.save(tmp_path / "best_model", model=model, optimizer=None, epoch=1, rng=None, meta=meta)
    pred = load_model(str(tmp_path)).predict(np.full((3, 36), 128.0))
    y = data.train.y * data.target_std + data.target_mean  # the training labels, in pixels
    np.testing.assert_allclose(pred, np.tile((y.min(0) + y.max(0)) / 2, (3, 1)), rtol=1e-5)


def test_report_of_a_specialists_folder_lists_each_group_and_the_combined_rmse(tmp_path):
    from tunepipe.report.compare import compare_report

    root = tmp_path / "spec"
    _fake_run(root / "eyes", "eyes", [0.02, 0.01], 2.0)
    _fake_run(root / "nose", "nose", [0.03, 0.02, 0.025], 1.0)
    groups = {
        "eyes": {"val_rmse": 2.0, "val_values": 40, "best_epoch": 2},
        "nose": {"val_rmse": 1.0, "val_values": 10, "best_epoch": 2},
    }
    record = {"labels": LABELS, "groups": groups, "combined_val_rmse": 1.843909}
    (root / "specialists.json").write_text(json.dumps(record))
    rows = [
        [c.strip() for c in line.split("|")]
        for line in compare_report([root], None, None).splitlines()
    ]
    assert [r[0] for r in rows[2:5]] == ["eyes", "nose", "spec (2 specialists)"]
    assert rows[4][4] == "1.8439"


def test_init_from_refuses_a_run_trained_on_another_image_size(tmp_path):
    from types import SimpleNamespace

    from tunepipe.train.pretrained import resolve_init_from

    cnn = {"kind": "cnn", "args": {"channels": [4]}}
    _save_run(tmp_path / "small", build_model(cnn, (1, 8, 8), 30), (1, 8, 8), 30)
    study = parse_study(
        {
            "name": "big",
            "task": "regression",
            "data": {"source": "x", "label": LABELS, "image_shape": [1, 16, 16]},
            "model": {"kind": "cnn", "channels": [4]},
            "init_from": str(tmp_path / "small"),
        }
    )
    data = SimpleNamespace(input_shape=(1, 16, 16), output_dim=30)
    with pytest.raises(RunDirError, match=r"shape \[1, 8, 8\], this study's are \[1, 16, 16\]"):
        resolve_init_from(study, data, tmp_path)
    same = SimpleNamespace(input_shape=(1, 8, 8), output_dim=30)
    resolved, transfer = resolve_init_from(study, same, tmp_path)
    assert transfer.fresh == [] and resolved.init_from == str(tmp_path / "small")
