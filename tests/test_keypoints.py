"""The case study's generic features on tiny sizes: the Kaggle format, the synthetic faces, the
flip with keypoint swaps, the masked loss, range scaling and label coverage (no Ray)."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from tests.conftest import tunepipe_cli
from tunepipe.config import DataConfig
from tunepipe.data import load_data
from tunepipe.data.augment import flip_plan, hflip, random_hflip
from tunepipe.data.faces import make_faces
from tunepipe.data.keypoints import (
    COLUMNS,
    DETAIL_KEYPOINTS,
    FLIP_PAIRS,
    KEYPOINTS,
    read_kaggle_csv,
    to_parquet,
    write_kaggle_csv,
)
from tunepipe.errors import DataError
from tunepipe.models.heads import MaskedMSELoss

SWAP = [list(p) for p in FLIP_PAIRS]


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """60 faces of 16x16 as Kaggle CSV and Parquet (seed 3)."""
    folder = tmp_path_factory.mktemp("faces")
    images, coords = make_faces(60, 16, seed=3)
    write_kaggle_csv(folder / "f.csv", images, coords)
    to_parquet(folder / "f.csv", folder / "f.parquet")
    return folder, images, coords


@pytest.mark.parametrize("seed", [0, 1])
def test_kaggle_csv_round_trips(tmp_path, seed):
    images, coords = make_faces(12, 12, seed=seed)
    coords[0, :4] = np.nan  # a row missing its eye centres, besides the generator's gaps
    write_kaggle_csv(tmp_path / "t.csv", images, coords)
    header = (tmp_path / "t.csv").read_text().splitlines()[0].replace('"', "").split(",")
    assert header == [*COLUMNS, "Image"]  # the Kaggle column names, in Kaggle's order
    table = read_kaggle_csv(tmp_path / "t.csv")
    back = np.column_stack([table.column(c).to_numpy(zero_copy_only=False) for c in COLUMNS])
    np.testing.assert_array_equal(np.isnan(back), np.isnan(coords))
    np.testing.assert_allclose(back[~np.isnan(back)], coords[~np.isnan(coords)])
    pixels = np.stack(table.column("image").to_pylist()).reshape(images.shape)
    np.testing.assert_array_equal(pixels, images)


def test_kaggle_csv_errors_name_the_file_and_row(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(
        ",".join([*COLUMNS, "Image"]) + "\n" + "1," * 30 + "1 2 3 4\n" + "1," * 30 + "5\n"
    )
    with pytest.raises(DataError, match=r"bad.csv: row 2 has 1 pixel values"):
        read_kaggle_csv(bad)
    (tmp_path / "cols.csv").write_text("a,Image\n1,2\n")
    with pytest.raises(DataError, match="columns .* are missing"):
        read_kaggle_csv(tmp_path / "cols.csv")


def test_generator_draws_the_real_sets_missing_pattern():
    images, coords = make_faces(1500, 12, seed=7)
    assert images.shape == (1500, 12, 12) and images.dtype == np.uint8
    missing = np.isnan(coords[:, 0::2])  # per keypoint
    complete = ~missing.any(axis=1)
    assert 0.25 < complete.mean() < 0.36  # the real set: 2140 of 7049 (30%)
    detail = [KEYPOINTS.index(k) for k in DETAIL_KEYPOINTS]
    together = missing[:, detail].all(axis=1) | ~missing[:, detail].any(axis=1)
    assert together.mean() > 0.97  # eye corners, eyebrows and mouth corners go together
    assert not missing[:, KEYPOINTS.index("nose_tip")].any()
    # The subject's left eye is on the image's right, as in Kaggle's data.
    assert np.nanmean(coords[:, 0]) > np.nanmean(coords[:, 2])
    again, coords_again = make_faces(1500, 12, seed=7)
    np.testing.assert_array_equal(again, images)  # seeded
    np.testing.assert_array_equal(np.isnan(coords_again), np.isnan(coords))


def test_datasets_make_and_import_cli(tmp_path):
    made = tunepipe_cli(
        "datasets", "make", "keypoints", "--n", "40", "--size", "16", "--seed", "1",
        "--out", str(tmp_path / "k.csv"),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "40 faces of 16x16" in made.stdout
    done = tunepipe_cli(
        "datasets", "import", str(tmp_path / "k.csv"), "--out", str(tmp_path / "k.pq")
    )
    assert done.returncode == 0, done.stderr
    table = pq.read_table(tmp_path / "k.pq")
    assert table.num_rows == 40 and table.schema.field("image").type.list_size == 256
    with pytest.raises(DataError, match="nope.csv: no such file"):  # exit 2 from the CLI
        to_parquet(tmp_path / "nope.csv", tmp_path / "x.pq")


def _plan(mean, scale, width=16):
    return flip_plan(list(COLUMNS), SWAP, "_x", np.asarray(mean), np.asarray(scale), width)


@pytest.mark.parametrize("stats", ["range", "standardised"])
def test_flip_swaps_exactly_the_declared_pairs_and_twice_is_identity(stats):
    rng = np.random.default_rng(0)
    pixels = rng.uniform(0, 15, (5, 30))
    if stats == "range":
        mean, scale = np.full(30, 7.5), np.full(30, 7.5)
    else:  # every column its own offset and scale: the flip must still land in pixels
        mean, scale = rng.uniform(3, 12, 30), rng.uniform(1, 4, 30)
    plan = _plan(mean, scale)
    x = torch.arange(5 * 16 * 16, dtype=torch.float32).reshape(5, 1, 16, 16)
    y = torch.tensor((pixels - mean) / scale, dtype=torch.float32)
    fx, fy = hflip(x, y, plan)
    flipped_px = fy.numpy() * scale + mean
    col = {c: j for j, c in enumerate(COLUMNS)}
    for left, right in FLIP_PAIRS:  # left takes right's point, mirrored, and the other way
        for a, b in ((left, right), (right, left)):
            np.testing.assert_allclose(
                flipped_px[:, col[f"{a}_x"]], 15 - pixels[:, col[f"{b}_x"]], atol=1e-4
            )
            np.testing.assert_allclose(
                flipped_px[:, col[f"{a}_y"]], pixels[:, col[f"{b}_y"]], atol=1e-4
            )
    unpaired = [k for k in KEYPOINTS if not any(k in p for p in FLIP_PAIRS)]
    assert unpaired == ["nose_tip", "mouth_center_top_lip", "mouth_center_bottom_lip"]
    for k in unpaired:  # mirrored in place, never moved to another keypoint
        np.testing.assert_allclose(
            flipped_px[:, col[f"{k}_x"]], 15 - pixels[:, col[f"{k}_x"]], atol=1e-4
        )
    assert torch.equal(fx, x.flip(-1))
    xx, yy = hflip(fx, fy, plan)
    assert torch.equal(xx, x)
    torch.testing.assert_close(yy, y, atol=1e-5, rtol=0)


def test_flip_keeps_missing_labels_missing_and_refuses_unknown_names():
    plan = _plan(np.full(30, 7.5), np.full(30, 7.5))
    y = torch.zeros(2, 30)
    y[0, 4:6] = float("nan")  # left_eye_inner_corner missing
    _, fy = hflip(torch.zeros(2, 1, 16, 16), y, plan)
    swapped = COLUMNS.index("right_eye_inner_corner_x")
    assert torch.isnan(fy[0, swapped : swapped + 2]).all() and torch.isnan(fy).sum() == 2
    with pytest.raises(DataError, match=r"swap\[0\].*'left_ear'"):
        flip_plan(list(COLUMNS), [["left_ear", "right_ear"]], "_x", np.zeros(30), np.ones(30), 16)


def test_random_flip_flips_a_seeded_share_of_the_batch():
    plan = _plan(np.full(30, 7.5), np.full(30, 7.5))
    x, y = torch.randn(400, 1, 16, 16), torch.randn(400, 30)
    fx, fy = random_hflip(x, y, plan, torch.Generator().manual_seed(1))
    flipped = (fx != x).flatten(1).any(1)
    assert 150 < int(flipped.sum()) < 250
    assert torch.equal(fx[flipped], x[flipped].flip(-1))
    assert torch.equal(fy[~flipped], y[~flipped])
    again, _ = random_hflip(x, y, plan, torch.Generator().manual_seed(1))
    assert torch.equal(again, fx)


def test_missing_labels_never_reach_the_loss_or_its_gradient():
    loss_fn = MaskedMSELoss()
    target = torch.tensor([[1.0, float("nan"), 3.0], [float("nan"), 2.0, float("nan")]])
    for outputs in (torch.zeros(2, 3), torch.tensor([[0.0, 1e6, 0.0], [-1e6, 0.0, 7.0]])):
        out = outputs.clone().requires_grad_(True)
        loss = loss_fn(out, target)
        assert loss.item() == pytest.approx((1 + 9 + 4) / 3)  # the present values only
        loss.backward()
        assert out.grad[torch.isnan(target)].abs().sum() == 0
        assert out.grad[~torch.isnan(target)].abs().sum() > 0
    full = torch.randn(4, 3)
    assert MaskedMSELoss()(torch.zeros(4, 3), full) == pytest.approx(
        torch.nn.MSELoss()(torch.zeros(4, 3), full)
    )


def _cfg(folder, **kw) -> DataConfig:
    base = dict(
        source=str(folder / "f.parquet"),
        image_column="image",
        image_shape=[1, 16, 16],
        label=list(COLUMNS),
        scale="range",
    )
    return DataConfig(**{**base, **kw})


def test_missing_labels_refuse_drop_and_mask(faces):
    folder, _, coords = faces
    with pytest.raises(DataError, match="null.*missing_labels: drop or mask"):
        load_data(_cfg(folder), "regression", 0)
    complete = int((~np.isnan(coords).any(axis=1)).sum())
    dropped = load_data(_cfg(folder, missing_labels="drop"), "regression", 0)
    assert len(dropped.train) + len(dropped.val) == complete
    masked = load_data(_cfg(folder, missing_labels="mask"), "regression", 0)
    assert len(masked.train) + len(masked.val) == 60
    assert np.isnan(masked.train.y).any() and not np.isinf(masked.train.y).any()
    cover = masked.label_coverage
    assert cover["rows"] == 60 and cover["complete"] == complete
    assert cover["per_label"]["nose_tip_x"] == 60


def test_range_scaling_and_pixels_back(faces):
    folder, images, coords = faces
    data = load_data(_cfg(folder, missing_labels="mask"), "regression", 0)
    assert data.train.x.min() >= 0 and data.train.x.max() <= 1
    y = data.train.y[np.isfinite(data.train.y)]
    assert y.min() == pytest.approx(-1, abs=1e-6) and y.max() == pytest.approx(1, abs=1e-6)
    # One number per channel, so a mirrored image is scaled the same way (flip-symmetric).
    assert len(set(np.round(data.feature_mean, 6))) == 1
    back = data.train.y * data.target_std + data.target_mean
    rows = np.sort(np.concatenate([back, data.val.y * data.target_std + data.target_mean]), axis=0)
    np.testing.assert_allclose(rows, np.sort(coords, axis=0), atol=1e-3)


def test_flip_normalisation_is_per_channel_with_standard_scale(faces):
    folder, _, _ = faces
    flip = {"hflip": {"swap": SWAP}}
    data = load_data(
        _cfg(folder, missing_labels="drop", scale="standard", augment=flip), "regression", 0
    )
    assert np.ptp(data.feature_mean) == 0 and np.ptp(data.feature_std) == 0
    plain = load_data(_cfg(folder, missing_labels="drop", scale="standard"), "regression", 0)
    assert np.ptp(plain.feature_mean) > 0  # without flips: per pixel, as before


def test_sanity_reports_label_coverage(faces):
    from tunepipe.playbook.data_checks import data_checks

    folder, _, coords = faces
    cfg = _cfg(folder, missing_labels="mask")
    checks = {c.name: c for c in data_checks(load_data(cfg, "regression", 0), cfg)}
    complete = int((~np.isnan(coords).any(axis=1)).sum())
    assert checks["label coverage"].detail.startswith(f"{complete:,} of 60 rows")
    assert checks["finite values"].status == "pass"  # masked NaN labels are not overflow
