"""Data: reading (Parquet, Feather, CSV, image lists), checks, seeded stratified splits,
train-only normalisation (playbook D1) and seeded shuffling (D2)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.feather as pa_feather
import pyarrow.parquet as pq
import pytest
import torch

from tunepipe.config import DataConfig
from tunepipe.data import iterate_batches, load_data, prepare_arrays
from tunepipe.data.io import read_table
from tunepipe.data.prepare import feature_stats, split_indices
from tunepipe.errors import DataError

WRITERS = {"parquet": pq.write_table, "feather": pa_feather.write_feather, "csv": pa_csv.write_csv}


def write(tmp_path, table: pa.Table, fmt: str = "parquet", name: str = "data") -> str:
    path = tmp_path / f"{name}.{fmt}"
    WRITERS[fmt](table, str(path))
    return str(path)


def toy_table(n: int = 40) -> pa.Table:
    rng = np.random.default_rng(1)
    return pa.table(
        {
            "a": rng.normal(size=n),
            "b": np.arange(n, dtype=np.int64),
            "flag": np.arange(n) % 3 == 0,
            "y": np.arange(n) % 2,
        }
    )


def data_errors(tmp_path, table: pa.Table, task: str = "classification", min_rows=1, **cfg):
    source = write(tmp_path, table)
    with pytest.raises(DataError) as info:
        load_data(
            DataConfig(source=source, **{"label": "y", **cfg}), task, seed=0, min_rows=min_rows
        )
    return info.value.problems


# ---------------------------------------------------------------- splits


def test_split_same_seed_same_indices_other_seed_other_indices():
    def split(seed):
        return split_indices(100, 0.2, 0.1, np.random.default_rng(seed))

    for a, b in zip(split(3), split(3), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(split(3)[1], split(4)[1])


@pytest.mark.parametrize("strata", [None, "classes"])
def test_split_is_a_partition_of_all_rows(strata):
    n = 97
    labels = np.arange(n) % 5 if strata else None
    train, val, test = split_indices(n, 0.2, 0.15, np.random.default_rng(0), strata=labels)
    assert (
        len(set(train) & set(val)) == len(set(train) & set(test)) == len(set(val) & set(test)) == 0
    )
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val, test])), np.arange(n))
    assert len(val) == pytest.approx(0.2 * n, abs=5) and len(test) == pytest.approx(0.15 * n, abs=5)


def test_split_stratified_class_proportions_within_one_row_per_class():
    # unbalanced classes with odd sizes: 3, 11, 25, 61 rows
    y = np.repeat(np.arange(4), [3, 11, 25, 61])
    np.random.default_rng(5).shuffle(y)
    train, val, test = split_indices(len(y), 0.2, 0.1, np.random.default_rng(0), strata=y)
    for c in range(4):
        size = int((y == c).sum())
        assert abs(int((y[val] == c).sum()) - 0.2 * size) <= 1
        assert abs(int((y[test] == c).sum()) - 0.1 * size) <= 1
        assert int((y[train] == c).sum()) >= size - 0.3 * size - 2


def test_prepare_arrays_split_is_seeded_and_stratified():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3)).astype(np.float32)
    y = np.repeat([0, 1, 2], [200, 70, 30]).astype(np.float64)
    cfg = DataConfig(source="-", label="y", val_fraction=0.2)
    first = prepare_arrays(x, y, cfg, "classification", seed=11)
    again = prepare_arrays(x, y, cfg, "classification", seed=11)
    other = prepare_arrays(x, y, cfg, "classification", seed=12)
    np.testing.assert_array_equal(first.val.x, again.val.x)
    assert not np.array_equal(first.val.x, other.val.x)
    assert np.bincount(first.val.y).tolist() == [40, 14, 6]
    assert first.test is None


def test_binary_split_keeps_the_class_shares_too():
    x = np.zeros((100, 2), np.float32)
    y = np.repeat([0, 1], [90, 10]).astype(np.float64)  # a rare positive class
    cfg = DataConfig(source="-", label="y", val_fraction=0.2)
    data = prepare_arrays(x, y, cfg, "binary", seed=5)
    assert data.val.y.ravel().tolist().count(1.0) == 2 and len(data.val) == 20


# ---------------------------------------------------------------- normalisation (D1)


def test_normalisation_uses_training_rows_only():
    n, seed = 200, 3
    cfg = DataConfig(source="-", label="y", val_fraction=0.25, test_fraction=0.1)
    y = (np.arange(n) % 2).astype(np.float64)
    # the split prepare_arrays will draw (same seed, same strata): make val/test rows extreme
    train_idx, val_idx, test_idx = split_indices(
        n, 0.25, 0.1, np.random.default_rng(seed), strata=y.astype(np.int64)
    )
    rng = np.random.default_rng(0)
    x = np.column_stack([np.arange(n), rng.normal(5.0, 2.0, n)]).astype(np.float32)
    x[val_idx, 1] = 1e6
    x[test_idx, 1] = -1e6

    data = prepare_arrays(x, y, cfg, "classification", seed=seed)

    # the train split holds exactly the rows we expected (column 0 is the row id)
    row_ids = data.train.x[:, 0] * data.feature_std[0] + data.feature_mean[0]
    np.testing.assert_allclose(np.sort(row_ids), train_idx, atol=1e-3)
    np.testing.assert_allclose(data.feature_mean, x[train_idx].mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(data.feature_std, x[train_idx].std(axis=0), rtol=1e-5)
    assert data.feature_std[1] < 10  # a leak of the 1e6 rows would make it ~1e5
    np.testing.assert_allclose(data.train.x.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(data.train.x.std(axis=0), 1, atol=1e-4)
    assert data.val.x[:, 1].min() > 1e4 and data.test.x[:, 1].max() < -1e4


def test_constant_columns_are_left_unscaled():
    x = np.column_stack([np.zeros(50), np.full(50, 7.0), np.arange(50)]).astype(np.float32)
    mean, std = feature_stats(x)
    assert std.tolist()[:2] == [1.0, 1.0]
    assert mean.tolist()[:2] == [0.0, 7.0]
    data = prepare_arrays(
        x, np.arange(50) % 2, DataConfig(source="-", label="y"), "classification", seed=0
    )
    assert np.isfinite(data.train.x).all() and np.isfinite(data.val.x).all()
    assert (data.train.x[:, :2] == 0).all()


def test_normalize_false_keeps_raw_values():
    x = np.arange(40, dtype=np.float32).reshape(20, 2) * 100
    cfg = DataConfig(source="-", label="y", normalize=False)
    data = prepare_arrays(x, np.arange(20) % 2, cfg, "classification", seed=0)
    assert data.feature_mean.tolist() == [0, 0] and data.feature_std.tolist() == [1, 1]
    assert set(data.train.x.ravel().tolist()) <= set(x.ravel().tolist())


def test_regression_targets_standardised_with_train_split_stats():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 2)).astype(np.float32)
    y = np.column_stack([rng.normal(1000, 50, 100), rng.normal(-3, 0.1, 100)]).astype(np.float32)
    data = prepare_arrays(x, y, DataConfig(source="-", label=["u", "v"]), "regression", seed=0)
    assert data.output_dim == 2 and data.train.y.shape == (80, 2)
    np.testing.assert_allclose(data.train.y.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(data.train.y.std(axis=0), 1, atol=1e-4)
    assert data.target_mean[0] == pytest.approx(1000, abs=20)
    assert data.stats()["target_std"] == data.target_std.tolist()


def test_digits_builtin_shape_and_constant_pixels():
    data = load_data(
        DataConfig(source="digits", label="label", val_fraction=0.2, test_fraction=0.1),
        "classification",
        seed=0,
    )
    total = len(data.train) + len(data.val) + len(data.test)
    assert total == 1797
    assert data.input_shape == (64,) and data.output_dim == 10
    assert data.classes == list(range(10))
    assert len(data.val) == pytest.approx(0.2 * 1797, abs=10)
    # digits has pixels that are 0 in every image (the corners): std 1, not 0, and no NaN
    assert (data.feature_std == 1.0).any()
    assert np.isfinite(data.train.x).all() and np.isfinite(data.feature_std).all()


# ---------------------------------------------------------------- shuffling (D2)


def rows_of(batches) -> list[list[int]]:
    return [xb.tolist() for xb, _ in batches]


def test_shuffle_same_seed_same_order_and_epochs_differ():
    x, y = torch.arange(50), torch.arange(50) * 10
    gen = torch.Generator().manual_seed(4)
    epoch1 = rows_of(iterate_batches(x, y, 8, gen))
    epoch2 = rows_of(iterate_batches(x, y, 8, gen))
    again = rows_of(iterate_batches(x, y, 8, torch.Generator().manual_seed(4)))
    assert epoch1 == again
    assert epoch1 != epoch2
    for epoch in (epoch1, epoch2):
        assert sorted(sum(epoch, [])) == list(range(50))  # every row exactly once
        assert [len(b) for b in epoch] == [8] * 6 + [2]


def test_shuffled_batches_keep_x_and_y_together():
    x, y = torch.arange(30), torch.arange(30) * 10
    for xb, yb in iterate_batches(x, y, 7, torch.Generator().manual_seed(0)):
        assert torch.equal(yb, xb * 10)


def test_drop_last_and_no_generator():
    x = y = torch.arange(10)
    assert [len(b) for b in rows_of(iterate_batches(x, y, 4, drop_last=True))] == [4, 4]
    assert rows_of(iterate_batches(x, y, 4)) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    # fewer rows than a batch: one short batch rather than none
    assert [len(b) for b in rows_of(iterate_batches(x, y, 32, drop_last=True))] == [10]


# ---------------------------------------------------------------- reading files


@pytest.mark.parametrize("fmt", ["parquet", "feather", "csv"])
def test_csv_feather_parquet_all_read_the_same(tmp_path, fmt):
    table = toy_table()
    source = write(tmp_path, table, fmt)
    data = load_data(DataConfig(source=source, label="y"), "classification", seed=0)
    reference = load_data(
        DataConfig(source=write(tmp_path, table, "parquet", "ref"), label="y"),
        "classification",
        seed=0,
    )
    assert data.input_shape == (3,)
    np.testing.assert_allclose(data.train.x, reference.train.x, rtol=1e-6)
    np.testing.assert_array_equal(data.val.y, reference.val.y)


def test_format_given_explicitly_for_an_unknown_extension(tmp_path):
    path = tmp_path / "table.dat"
    pa_csv.write_csv(toy_table(), str(path))
    with pytest.raises(DataError, match="data.format"):
        read_table(DataConfig(source=str(path), label="y"))
    table = read_table(DataConfig(source=str(path), label="y", format="csv"))
    assert table.num_rows == 40


def test_relative_source_is_taken_from_the_study_folder(tmp_path):
    write(tmp_path, toy_table(), name="rel")
    table = read_table(DataConfig(source="rel.parquet", label="y"), base_dir=tmp_path)
    assert table.num_rows == 40


def test_missing_file_names_data_source(tmp_path):
    with pytest.raises(DataError, match=r"^data.source: .*nope.parquet does not exist"):
        read_table(DataConfig(source=str(tmp_path / "nope.parquet"), label="y"))


def test_selected_features_only(tmp_path):
    source = write(tmp_path, toy_table())
    data = load_data(DataConfig(source=source, label="y", features=["b"]), "classification", 0)
    assert data.input_shape == (1,)
    raw = np.concatenate([data.train.x, data.val.x])[:, 0] * data.feature_std + data.feature_mean
    assert sorted(np.rint(raw).astype(int).tolist()) == list(range(40))  # column b: the row ids


def test_image_column_reshaped_to_image_shape(tmp_path):
    n = 12
    pixels = [[float(100 * i + j) for j in range(12)] for i in range(n)]
    table = pa.table({"img": pa.array(pixels, pa.list_(pa.float32())), "y": np.arange(n) % 2})
    cfg = DataConfig(
        source=write(tmp_path, table),
        label="y",
        image_column="img",
        image_shape=[3, 2, 2],
        normalize=False,
        val_fraction=0.25,
    )
    data = load_data(cfg, "classification", seed=0)
    assert data.input_shape == (3, 2, 2)
    assert data.train.x.shape[1:] == data.val.x.shape[1:] == (3, 2, 2)
    assert len(data.train) + len(data.val) == n
    for image in data.train.x:
        row = int(image[0, 0, 0]) // 100
        np.testing.assert_array_equal(image, np.asarray(pixels[row]).reshape(3, 2, 2))


def test_image_column_fixed_size_list(tmp_path):
    arr = pa.FixedSizeListArray.from_arrays(pa.array(np.arange(80, dtype=np.float32)), 4)
    table = pa.table({"img": arr, "y": np.arange(20) % 2})
    cfg = DataConfig(
        source=write(tmp_path, table), label="y", image_column="img", image_shape=[1, 2, 2]
    )
    assert load_data(cfg, "classification", seed=0).train.x.shape[1:] == (1, 2, 2)


# ---------------------------------------------------------------- bad data: column and count


def test_missing_column_with_did_you_mean(tmp_path):
    problems = data_errors(tmp_path, toy_table(), features=["a", "bb"])
    assert problems[0].startswith("data: column 'bb' is not in ")
    assert "(did you mean 'b'?)" in problems[0]
    assert problems[1] == "data: the columns there are: a, b, flag, y"


def test_missing_label_column(tmp_path):
    (line, _) = data_errors(tmp_path, toy_table(), label="label")
    assert "column 'label' is not in" in line


def test_non_numeric_feature_column(tmp_path):
    table = toy_table().append_column("name", pa.array(["x"] * 40))
    (line,) = data_errors(tmp_path, table)
    assert line.startswith("data: column 'name' holds string, not numbers")


@pytest.mark.parametrize("bad, count", [(np.nan, 3), (np.inf, 2), (-np.inf, 1)])
def test_non_finite_feature_named_with_count(tmp_path, bad, count):
    a = toy_table().column("a").to_numpy().copy()
    a[[5, 9, 13][:count]] = bad
    table = toy_table().set_column(0, "a", pa.array(a))
    (line,) = data_errors(tmp_path, table)
    assert line.startswith(f"data: feature column 'a' has {count} rows that are NaN, inf or null")


def test_null_feature_and_two_bad_columns_reported_together(tmp_path):
    table = toy_table()
    table = table.set_column(0, "a", pa.array([None, None] + [1.0] * 38, pa.float64()))
    table = table.set_column(1, "b", pa.array([None] + list(range(39)), pa.int64()))
    problems = data_errors(tmp_path, table)
    assert any("'a' has 2 rows" in p for p in problems)
    assert any("'b' has 1 rows" in p for p in problems)


def test_nan_in_labels_with_count(tmp_path):
    y = (np.arange(40) % 2).astype(float)
    y[[0, 3, 4]] = np.nan
    (line,) = data_errors(tmp_path, toy_table().set_column(3, "y", pa.array(y)))
    assert line.startswith("data: label column 'y' has 3 rows that are NaN or inf")


def test_null_labels_with_count(tmp_path):
    y = pa.array([None, None] + [0, 1] * 19, pa.int64())
    (line,) = data_errors(tmp_path, toy_table().set_column(3, "y", y))
    assert line.startswith("data: label column 'y' has 2 empty (null) rows")


def test_fewer_rows_than_one_batch(tmp_path):
    (line,) = data_errors(tmp_path, toy_table(20), min_rows=64)
    assert line.startswith("data: 20 rows, fewer than one batch (64)")


def test_training_split_smaller_than_one_batch(tmp_path):
    (line,) = data_errors(tmp_path, toy_table(40), min_rows=35, val_fraction=0.5)
    assert line.startswith("data: the training split has 20 rows, fewer than one batch (35)")


def test_labels_outside_declared_classes(tmp_path):
    table = toy_table().set_column(3, "y", pa.array(np.arange(40) % 4))
    (line,) = data_errors(tmp_path, table, classes=[0, 1, 2])
    assert "label column 'y' has 10 rows outside the declared classes 0..2 (values [3])" in line


def test_non_integer_class_labels(tmp_path):
    y = (np.arange(40) % 2).astype(float)
    y[:7] += 0.5
    (line,) = data_errors(tmp_path, toy_table().set_column(3, "y", pa.array(y)))
    assert line.startswith("data: label column 'y' has 7 non-integer values")


def test_negative_class_labels(tmp_path):
    y = np.arange(40) % 2 - 1  # -1 and 0
    (line,) = data_errors(tmp_path, toy_table().set_column(3, "y", pa.array(y)))
    assert line.startswith("data: label column 'y' has 20 rows with negative class ids")


def test_binary_labels_must_be_zero_or_one(tmp_path):
    table = toy_table().set_column(3, "y", pa.array(np.arange(40) % 3))
    (line,) = data_errors(tmp_path, table, task="binary")
    assert line.startswith("data: label column 'y' has 13 rows that are not 0 or 1")


def test_binary_labels_become_float_column():
    x = np.zeros((20, 1), np.float32)
    data = prepare_arrays(x, np.arange(20) % 2, DataConfig(source="-", label="y"), "binary", 0)
    assert data.train.y.dtype == np.float32 and data.train.y.shape == (16, 1)
    assert data.output_dim == 1


def test_declared_classes_map_to_contiguous_ids():
    x = np.zeros((30, 1), np.float32)
    y = np.array([3, 7, 9] * 10, dtype=np.float64)
    data = prepare_arrays(
        x, y, DataConfig(source="-", label="y", classes=[3, 7, 9]), "classification", 0
    )
    assert data.classes == [3, 7, 9] and data.output_dim == 3
    assert sorted(set(data.train.y.tolist())) == [0, 1, 2]


def test_image_shape_not_matching_the_row_size(tmp_path):
    table = pa.table(
        {"img": pa.array([[1.0] * 12] * 10, pa.list_(pa.float32())), "y": np.arange(10) % 2}
    )
    (line,) = data_errors(tmp_path, table, image_column="img", image_shape=[3, 2, 3])
    assert line == "data.image_shape: [3, 2, 3] holds 18 values but each row has 12 features"
    (line,) = data_errors(tmp_path, toy_table(), image_shape=[1, 2, 2])
    assert line == "data.image_shape: [1, 2, 2] holds 4 values but each row has 3 features"


def test_image_rows_of_different_lengths(tmp_path):
    table = pa.table({"img": pa.array([[1.0] * 4, [1.0] * 5] * 5), "y": np.arange(10) % 2})
    (line,) = data_errors(tmp_path, table, image_column="img")
    assert line.startswith("data.image_column: rows of 'img' have different lengths ([4, 5])")


def test_image_column_that_is_not_a_list(tmp_path):
    (line,) = data_errors(tmp_path, toy_table(), image_column="a")
    assert line.startswith("data.image_column: column 'a' holds double, not lists")


def test_empty_validation_split_is_an_error_not_a_zero_val_loss():
    # five classes of two rows: 0.2 * 2 rounds to 0 validation rows in every class
    x = np.random.default_rng(0).normal(size=(10, 2)).astype(np.float32)
    with pytest.raises(DataError, match=r"^data: the validation split is empty \(10 rows"):
        prepare_arrays(x, np.arange(10) % 5, DataConfig(source="-", label="y"), "classification", 0)


def test_regression_with_one_target_as_a_flat_array():
    x = np.arange(40, dtype=np.float32).reshape(20, 2)
    y = np.linspace(100, 200, 20).astype(np.float32)  # shape (20,), not (20, 1)
    data = prepare_arrays(x, y, DataConfig(source="-", label="t"), "regression", seed=0)
    assert data.output_dim == 1 and data.train.y.shape == (16, 1)
    assert data.target_mean.shape == (1,) and data.target_mean[0] == pytest.approx(150, abs=15)
