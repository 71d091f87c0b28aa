"""Synthetic grey faces with the 15 Kaggle keypoints, for the case study (the real set can't be
downloaded everywhere). `tunepipe datasets make keypoints` writes them in the Kaggle CSV format.

Each face is drawn in its own coordinates (u right, v down, the face's half-width is 1) from its
keypoints, so the drawing and the labels agree by construction; a per-face pose (roll, yaw), scale
and position map it to pixels, then lighting (brightness, contrast, a gradient) and noise vary it.
About 70% of the rows lose the 11 "detail" keypoints together, as in the real set, where 2140 of
7049 rows have all 15. Pixel (i, j) has its centre at x = j, y = i.
"""

from __future__ import annotations

import numpy as np

from tunepipe.data.keypoints import DETAIL_KEYPOINTS, KEYPOINTS

DETAIL_MISSING = 0.696  # the real set: 4909 of 7049 rows lack the detail keypoints
# Rare single gaps in the real set: eye centres (10 and 13 rows), bottom lip (33 rows).
RARE_MISSING = {"left_eye_center": 0.0014, "right_eye_center": 0.0018}
RARE_MISSING["mouth_center_bottom_lip"] = 0.0047
PARTIAL_DETAIL = 0.01  # rows with details that still lack one of them (the counts differ a little)
INDEX = {k: i for i, k in enumerate(KEYPOINTS)}


def make_faces(n: int, size: int = 96, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n faces: (n, size, size) uint8 images and (n, 30) pixel coordinates, NaN where missing."""
    rng = np.random.default_rng(seed)
    images = np.empty((n, size, size), np.uint8)
    coords = np.empty((n, 30))
    for start in range(0, n, 256):  # chunks keep the per-pixel arrays small
        m = min(256, n - start)
        shape = _face_shapes(rng, m)
        pose = _poses(rng, m, size)
        images[start : start + m] = _render(rng, shape, pose, size)
        coords[start : start + m] = _to_pixels(shape["kp"], pose).reshape(m, 30)
    return images, _drop_keypoints(rng, coords)


def _face_shapes(rng: np.random.Generator, m: int) -> dict[str, np.ndarray]:
    """Keypoints (m, 15, 2) in face units, plus the few extra shape numbers the drawing needs."""
    g = rng.normal
    eye_dx, eye_y = g(0.36, 0.03, m), g(-0.22, 0.04, m)
    eye_w, eye_h = g(0.15, 0.015, m), np.abs(g(0.065, 0.01, m)) + 0.03
    brow_y, brow_tilt = eye_y - g(0.17, 0.03, m), g(0.03, 0.02, m)
    brow_in, brow_out = eye_dx - g(0.2, 0.03, m), eye_dx + g(0.24, 0.03, m)
    nose_y = g(0.15, 0.04, m)
    mouth_y, mouth_w = g(0.5, 0.04, m), g(0.27, 0.03, m)
    smile, lip_top, lip_bot = g(-0.01, 0.02, m), g(0.05, 0.01, m), g(0.08, 0.015, m)
    kp = np.zeros((m, 15, 2))
    for side, sign in (("left", 1.0), ("right", -1.0)):  # the subject's left is the image's right
        kp[:, INDEX[f"{side}_eye_center"]] = np.c_[sign * eye_dx, eye_y]
        kp[:, INDEX[f"{side}_eye_inner_corner"]] = np.c_[sign * (eye_dx - eye_w), eye_y]
        kp[:, INDEX[f"{side}_eye_outer_corner"]] = np.c_[sign * (eye_dx + eye_w), eye_y]
        kp[:, INDEX[f"{side}_eyebrow_inner_end"]] = np.c_[sign * brow_in, brow_y]
        kp[:, INDEX[f"{side}_eyebrow_outer_end"]] = np.c_[sign * brow_out, brow_y + brow_tilt]
        kp[:, INDEX[f"mouth_{side}_corner"]] = np.c_[sign * mouth_w, mouth_y + smile]
    kp[:, INDEX["nose_tip"]] = np.c_[np.zeros(m), nose_y]
    kp[:, INDEX["mouth_center_top_lip"]] = np.c_[np.zeros(m), mouth_y - lip_top]
    kp[:, INDEX["mouth_center_bottom_lip"]] = np.c_[np.zeros(m), mouth_y + lip_bot]
    yaw = rng.uniform(-0.25, 0.25, m)[:, None]  # a turned head: features slide and the far side
    kp[..., 0] = kp[..., 0] * (1 - 0.3 * yaw * np.sign(kp[..., 0])) + 0.3 * yaw  # narrows
    kp[..., 0] += 0.15 * yaw * (kp[..., 1] > 0.05)  # the nose and mouth slide further
    return {"kp": kp, "eye_h": eye_h, "yaw": yaw[:, 0], "hair": rng.uniform(-0.95, -0.6, m)}


def _poses(rng: np.random.Generator, m: int, size: int) -> dict[str, np.ndarray]:
    return {
        "roll": np.clip(rng.normal(0, 0.15, m), -0.35, 0.35),
        "scale": size * rng.uniform(0.3, 0.4, m),  # pixels per face unit
        "centre": size / 2 + np.clip(rng.normal(0, 0.04 * size, (m, 2)), -0.08 * size, 0.08 * size),
    }


def _to_pixels(kp: np.ndarray, pose: dict[str, np.ndarray]) -> np.ndarray:
    c, s = np.cos(pose["roll"])[:, None], np.sin(pose["roll"])[:, None]
    u, v = kp[..., 0], kp[..., 1]
    x = pose["centre"][:, :1] + pose["scale"][:, None] * (c * u - s * v)
    y = pose["centre"][:, 1:] + pose["scale"][:, None] * (s * u + c * v)
    return np.stack([x, y], axis=-1)


def _render(rng: np.random.Generator, shape: dict, pose: dict, size: int) -> np.ndarray:
    """Draw each face in its own units on the pixel grid (soft edges about one pixel wide)."""
    m = len(pose["roll"])
    grid = np.arange(size, dtype=np.float64)
    dx = grid[None, None, :] - pose["centre"][:, 0, None, None]
    dy = grid[None, :, None] - pose["centre"][:, 1, None, None]
    c, s = np.cos(pose["roll"])[:, None, None], np.sin(pose["roll"])[:, None, None]
    scale = pose["scale"][:, None, None]
    u, v = (c * dx + s * dy) / scale, (-s * dx + c * dy) / scale
    edge = 0.6 / scale  # about a pixel, in face units

    def ellipse(cu, cv, a, b):  # 1 inside, 0 outside, soft in between
        a, b = np.abs(a) + 0.005, np.abs(b) + 0.005  # a smile can put a corner below the lip
        q = np.sqrt(((u - cu) / a) ** 2 + ((v - cv) / b) ** 2)
        return 1 / (1 + np.exp((q - 1) * np.minimum(a, b) / edge))

    def segment(p0, p1, width):
        d = p1 - p0
        t = np.clip(((u - p0[0]) * d[0] + (v - p0[1]) * d[1]) / (d**2).sum(0), 0, 1)
        dist = np.hypot(u - p0[0] - t * d[0], v - p0[1] - t * d[1])
        return 1 / (1 + np.exp((dist - width) / edge))

    kp = shape["kp"].transpose(1, 2, 0)[..., None, None]  # (15, 2, m, 1, 1)
    col = lambda *a: rng.uniform(*a, m)[:, None, None]  # noqa: E731 - one random value per face
    skin, bg = col(0.45, 0.8), col(0.05, 0.95)
    face = ellipse(shape["yaw"][:, None, None] * 0.1, 0.05, 1.0, 1.3)
    img = bg + (skin * (1 - 0.3 * (u**2 + (v / 1.3) ** 2)) - bg) * face
    hair = face * (1 / (1 + np.exp((v - shape["hair"][:, None, None]) / edge)))
    img += (col(0.02, 0.3) - img) * hair
    for side in ("left", "right"):
        inner, outer = kp[INDEX[f"{side}_eye_inner_corner"]], kp[INDEX[f"{side}_eye_outer_corner"]]
        centre, half_w = (inner + outer) / 2, np.abs(outer[0] - inner[0]) / 2
        eye_h = shape["eye_h"][:, None, None]
        img += (skin + 0.15 - img) * ellipse(centre[0], centre[1], half_w, eye_h)
        iris = ellipse(centre[0] + 0.2 * half_w * col(-1, 1), centre[1], eye_h, eye_h)
        img += (col(0.0, 0.2) - img) * iris
        brow_in, brow_out = (kp[INDEX[f"{side}_eyebrow_{end}_end"]] for end in ("inner", "outer"))
        img += (skin * 0.35 - img) * segment(brow_in, brow_out, 0.04)
    nose = kp[INDEX["nose_tip"]]
    img += 0.12 * ellipse(nose[0], nose[1] - 0.03, 0.06, 0.05)
    for sign in (-1, 1):
        img += (skin * 0.3 - img) * ellipse(nose[0] + sign * 0.07, nose[1] + 0.04, 0.035, 0.02)
    left, right = kp[INDEX["mouth_left_corner"]], kp[INDEX["mouth_right_corner"]]
    top, bottom = kp[INDEX["mouth_center_top_lip"]], kp[INDEX["mouth_center_bottom_lip"]]
    mid_v = (left[1] + right[1]) / 2
    lips = np.where(
        v < mid_v,
        ellipse((left[0] + right[0]) / 2, mid_v, (left[0] - right[0]) / 2, mid_v - top[1]),
        ellipse((left[0] + right[0]) / 2, mid_v, (left[0] - right[0]) / 2, bottom[1] - mid_v),
    )
    img += (skin * 0.55 - img) * lips
    img += (skin * 0.2 - img) * segment(left, right, 0.012) * lips
    gx, gy = col(-0.25, 0.25), col(-0.25, 0.25)
    ramp = (gx * (grid[None, None, :] - size / 2) + gy * (grid[None, :, None] - size / 2)) / size
    img = col(0.7, 1.25) * (img - 0.5) + 0.5 + col(-0.12, 0.12) + ramp
    img += rng.normal(0, 1, img.shape) * col(0.01, 0.05)
    return np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)


def _drop_keypoints(rng: np.random.Generator, coords: np.ndarray) -> np.ndarray:
    """The real set's missing pattern: the details together, a few single gaps elsewhere."""
    n = len(coords)
    missing = np.zeros((n, len(KEYPOINTS)), bool)
    detail = [INDEX[k] for k in DETAIL_KEYPOINTS]
    no_details = rng.random(n) < DETAIL_MISSING
    missing[np.ix_(no_details, detail)] = True
    partial = ~no_details & (rng.random(n) < PARTIAL_DETAIL)
    missing[np.flatnonzero(partial), rng.choice(detail, int(partial.sum()))] = True
    for name, p in RARE_MISSING.items():
        missing[:, INDEX[name]] |= rng.random(n) < p
    out = coords.copy()
    out[np.repeat(missing, 2, axis=1)] = np.nan
    return out
