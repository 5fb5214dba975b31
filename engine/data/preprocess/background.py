"""The background plate: per-pixel median of the frames where the pixel is background, holes inpainted."""
from __future__ import annotations

import numpy as np

MAX_SAMPLES = 64
"""Frames sampled (evenly over the video) for the median; more cost memory and sorting time."""
HALO = 0.02
"""The person mask is grown by this fraction of the frame side before sampling, so edge pixels blended with the
person (hair, motion blur) stay out of the plate."""


def sample_every(frames: int) -> int:
    """Stride that picks at most MAX_SAMPLES frames out of `frames`."""
    return max(1, -(-frames // MAX_SAMPLES))


def grow(person: np.ndarray) -> np.ndarray:
    """bool [S, S] -> the same mask dilated by HALO of the side."""
    import cv2

    radius = max(1, int(round(HALO * person.shape[0])))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(person.astype(np.uint8), kernel).astype(bool)


def _masked_median(frames: np.ndarray, hidden: np.ndarray) -> np.ndarray:
    """Median over axis 0 of frames [N, R, S, 3] ignoring samples where hidden [N, R, S]; NaN where all are hidden.

    Sorting with the hidden samples pushed to the end and picking the middle of the visible ones per pixel is much
    faster than np.nanmedian, which loops over pixels that have some NaN.
    """
    values = frames.astype(np.float32)
    values[hidden] = np.inf
    values.sort(axis=0)
    visible = (~hidden).sum(axis=0)  # [R, S]
    count = np.broadcast_to(visible[None, ..., None], (1, *values.shape[1:]))
    low = np.take_along_axis(values, np.maximum(count - 1, 0) // 2, axis=0)[0]
    high = np.take_along_axis(values, np.minimum(count // 2, len(values) - 1), axis=0)[0]
    with np.errstate(invalid="ignore"):  # inf - inf never reaches the result: those pixels become NaN
        return np.where(visible[..., None] > 0, (low + high) / 2.0, np.nan)


def background_plate(frames: np.ndarray, person: np.ndarray) -> tuple[np.ndarray, float]:
    """frames [N, S, S, 3] uint8, person [N, S, S] bool (already grown) -> plate [S, S, 3] uint8, hole fraction.

    A pixel covered by the person in every sample is a hole; holes are filled by OpenCV's Telea inpainting from
    the plate around them.
    """
    import cv2

    count, size = frames.shape[0], frames.shape[1]
    plate = np.full((size, size, 3), np.nan, np.float32)
    rows = max(1, (32 << 20) // max(1, count * size * 3 * 4))  # rows per chunk: about 32 MB of float32 at a time
    for top in range(0, size, rows):
        plate[top:top + rows] = _masked_median(frames[:, top:top + rows], person[:, top:top + rows])
    holes = ~np.isfinite(plate).all(axis=-1)
    plate = np.nan_to_num(plate).clip(0, 255).astype(np.uint8)
    fraction = float(holes.mean())
    if holes.all():
        return np.full_like(plate, 127), fraction
    if holes.any():
        radius = max(3, size // 64)
        plate = cv2.inpaint(plate, holes.astype(np.uint8), radius, cv2.INPAINT_TELEA)
    return plate, fraction
