"""predict's contract (no Ray): columns by name, finite rows, shapes per task, weights_only."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_train_loop import blobs, prepared, regression_xy, study, train

from tunepipe.data import load_data
from tunepipe.data.prepare import pandas_index_columns
from tunepipe.predict import load_model

NAMES = ["a", "b", "c", "d"]


def classifier(tmp_path, task="classification"):
    tmp_path.mkdir(parents=True, exist_ok=True)
    s = study(task, max_epochs=2)
    x, y = blobs(classes=(0, 1, 2) if task == "classification" else (0, 1))
    data = prepared(s, x, y)
    data.feature_names = NAMES
    rec = train(tmp_path, s, data)
    shutil.copytree(rec.checkpoints[2], tmp_path / "run" / "best_model")
    return load_model(str(tmp_path / "run")), x


def test_a_dataframe_is_matched_by_column_name_in_any_order(tmp_path):
    model, x = classifier(tmp_path)
    frame = pd.DataFrame(x, columns=NAMES)
    expected = model.predict(x)
    np.testing.assert_array_equal(model.predict(frame[["d", "b", "a", "c"]]), expected)
    np.testing.assert_array_equal(model.predict(pa.Table.from_pandas(frame[NAMES[::-1]])), expected)
    np.testing.assert_allclose(
        model.predict_proba(frame[["c", "a", "d", "b"]]), model.predict_proba(x)
    )


def test_missing_and_extra_columns_are_refused_by_name(tmp_path):
    model, x = classifier(tmp_path)
    frame = pd.DataFrame(x, columns=NAMES)
    with pytest.raises(ValueError, match="missing columns: 'c'"):
        model.predict(frame.drop(columns=["c"]))
    with pytest.raises(ValueError, match="not trained on: 'label'"):
        model.predict(frame.assign(label=1))


def test_rows_with_nan_or_inf_are_refused_with_their_positions(tmp_path):
    model, x = classifier(tmp_path)
    x = x.copy()
    x[3, 1], x[7, 0] = np.nan, np.inf
    with pytest.raises(ValueError, match=r"2 rows hold NaN or inf \(rows \[3, 7\]"):
        model.predict(x)


def test_predict_proba_exists_for_classifiers_only_and_shapes_are_documented(tmp_path):
    model, x = classifier(tmp_path / "c")
    assert model.predict(x).shape == (len(x),) and model.predict_proba(x).shape == (len(x), 3)
    binary, xb = classifier(tmp_path / "b", "binary")
    assert binary.predict_proba(xb).shape == (len(xb),)
    s = study("regression", max_epochs=1, data={"label": "u"})
    xr, yr = regression_xy()
    rec = train(tmp_path, s, prepared(s, xr, yr[:, 0]))
    shutil.copytree(rec.checkpoints[1], tmp_path / "r" / "best_model")
    regression = load_model(str(tmp_path / "r"))
    assert regression.predict(xr).shape == (len(xr),)  # one target: flat
    assert not hasattr(regression, "predict_proba")
    with pytest.raises(AttributeError, match="no class probabilities"):
        regression.predict_proba(xr)


@pytest.mark.parametrize("index", ["range-not-kept", "named", "unnamed"])
def test_a_pandas_index_is_never_a_feature(tmp_path, index):
    x, y = blobs()
    frame = pd.DataFrame(x, columns=NAMES).assign(y=y)
    if index == "named":
        frame.index = pd.Index(np.arange(len(frame)) * 3, name="row_id")
    elif index == "unnamed":
        frame.index = np.arange(len(frame)) * 3
    frame.to_parquet(tmp_path / "toy.parquet")
    schema = pq.read_schema(tmp_path / "toy.parquet")
    assert len(pandas_index_columns(schema)) == (0 if index == "range-not-kept" else 1)
    s = study()
    data = load_data(s.data, s.task, s.seed, base_dir=tmp_path)
    assert data.feature_names == NAMES and data.input_shape == (4,)
    assert data.stats()["feature_names"] == NAMES
