"""The Kaggle facial-keypoints format: 15 named keypoints (30 columns) plus a space-separated image.

`read_kaggle_csv` turns such a CSV (the real `training.csv`, or one `tunepipe datasets make
keypoints` drew) into an Arrow table with an `image` list column, which `to_parquet` writes once so
that studies read Parquet. Names follow the subject's own left and right, as Kaggle's do: the left
eye is on the image's right-hand side.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from tunepipe.errors import DataError

KEYPOINTS = (
    "left_eye_center",
    "right_eye_center",
    "left_eye_inner_corner",
    "left_eye_outer_corner",
    "right_eye_inner_corner",
    "right_eye_outer_corner",
    "left_eyebrow_inner_end",
    "left_eyebrow_outer_end",
    "right_eyebrow_inner_end",
    "right_eyebrow_outer_end",
    "nose_tip",
    "mouth_left_corner",
    "mouth_right_corner",
    "mouth_center_top_lip",
    "mouth_center_bottom_lip",
)
COLUMNS = tuple(f"{k}_{axis}" for k in KEYPOINTS for axis in ("x", "y"))
IMAGE = "Image"  # Kaggle's column: 96 * 96 grey values 0..255, space-separated
IMAGE_COLUMN = "image"  # ours, in Parquet: a list of uint8

# A horizontal flip turns each left keypoint into its right twin (the case study's flip_indices).
FLIP_PAIRS = tuple(
    (k, k.replace("left", "right"))
    for k in KEYPOINTS
    if "left" in k and k.replace("left", "right") in KEYPOINTS
)

# The keypoints that are missing together in about 70% of the real rows (everything but the eye
# centres, the nose tip and the bottom lip).
DETAIL_KEYPOINTS = tuple(
    k
    for k in KEYPOINTS
    if k not in ("left_eye_center", "right_eye_center", "nose_tip", "mouth_center_bottom_lip")
)

# The specialists of the case study: one model per group of keypoints.
GROUPS = {
    "eye_centers": ("left_eye_center", "right_eye_center"),
    "nose": ("nose_tip",),
    "mouth": ("mouth_left_corner", "mouth_right_corner", "mouth_center_top_lip"),
    "bottom_lip": ("mouth_center_bottom_lip",),
    "eye_corners": (
        "left_eye_inner_corner",
        "left_eye_outer_corner",
        "right_eye_inner_corner",
        "right_eye_outer_corner",
    ),
    "eyebrows": (
        "left_eyebrow_inner_end",
        "left_eyebrow_outer_end",
        "right_eyebrow_inner_end",
        "right_eyebrow_outer_end",
    ),
}


def read_kaggle_csv(path: str | Path) -> pa.Table:
    """The Kaggle CSV as an Arrow table: 30 float64 coordinate columns (null where missing) and
    `image`, a list<uint8> per row. Every problem raises DataError naming the file and row."""
    import pyarrow.csv as pcsv

    path = Path(path)
    try:
        raw = pcsv.read_csv(
            path,
            convert_options=pcsv.ConvertOptions(
                column_types={**{c: pa.float64() for c in COLUMNS}, IMAGE: pa.string()}
            ),
        )
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except pa.ArrowInvalid as exc:
        raise DataError(f"{path}: not a facial-keypoints CSV: {exc}") from None
    missing = [c for c in (*COLUMNS, IMAGE) if c not in raw.column_names]
    if missing:
        raise DataError(
            f"{path}: columns {missing[:5]} are missing; a Kaggle facial-keypoints CSV has the "
            f"30 coordinate columns ({COLUMNS[0]}, ...) and {IMAGE}"
        )
    pixels = _parse_images(raw.column(IMAGE).to_pylist(), path)
    columns = {c: raw.column(c).combine_chunks() for c in COLUMNS}
    return pa.table({**columns, IMAGE_COLUMN: image_array(pixels)})


def _parse_images(texts: list[str | None], path: Path) -> np.ndarray:
    rows = []
    for i, text in enumerate(texts):
        values = np.array((text or "").split(), dtype=np.float64)
        if rows and len(values) != len(rows[0]):
            raise DataError(
                f"{path}: row {i + 1} has {len(values)} pixel values in {IMAGE}, the first "
                f"row {len(rows[0])}; every image must be the same size"
            )
        if len(values) == 0 or np.any((values < 0) | (values > 255)):
            raise DataError(
                f"{path}: row {i + 1}: {IMAGE} must hold grey values 0..255 separated by spaces"
            )
        rows.append(values)
    if not rows:
        raise DataError(f"{path}: no rows")
    side = int(round(len(rows[0]) ** 0.5))
    if side * side != len(rows[0]):
        raise DataError(f"{path}: {len(rows[0])} pixel values per image is not a square image")
    return np.round(np.stack(rows)).astype(np.uint8)


def image_array(pixels: np.ndarray) -> pa.Array:
    """(n, h, w) or (n, h*w) uint8 grey images as one list<uint8> Arrow column."""
    flat = np.ascontiguousarray(pixels.reshape(len(pixels), -1))
    return pa.FixedSizeListArray.from_arrays(pa.array(flat.ravel()), flat.shape[1])


def write_kaggle_csv(path: str | Path, images: np.ndarray, coords: np.ndarray) -> None:
    """Write (n, h, w) uint8 images and (n, 30) pixel coordinates (NaN: missing) as Kaggle does."""
    import pyarrow.csv as pcsv

    columns = {
        c: pa.array(coords[:, j], mask=np.isnan(coords[:, j])) for j, c in enumerate(COLUMNS)
    }
    flat = images.reshape(len(images), -1)
    columns[IMAGE] = pa.array([" ".join(map(str, row)) for row in flat.tolist()])
    pcsv.write_csv(pa.table(columns), Path(path))


def to_parquet(csv_path: str | Path, out: str | Path) -> pa.Table:
    """Read a Kaggle facial-keypoints CSV and write it as Parquet; returns the table."""
    import pyarrow.parquet as pq

    table = read_kaggle_csv(csv_path)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, Path(out))
    return table
