"""The background plate: per-pixel median of the frames where the pixel is background, holes filled (push-pull)."""
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

    A pixel covered by the person in every sample is a hole; holes are filled from the plate around them.
    """
    count, size = frames.shape[0], frames.shape[1]
    plate = np.full((size, size, 3), np.nan, np.float32)
    rows = max(1, (32 << 20) // max(1, count * size * 3 * 4))  # rows per chunk: about 32 MB of float32 at a time
    for top in range(0, size, rows):
        plate[top:top + rows] = _masked_median(frames[:, top:top + rows], person[:, top:top + rows])
    holes = ~np.isfinite(plate).all(axis=-1)
    fraction = float(holes.mean())
    if holes.all():
        return np.full((size, size, 3), 127, np.uint8), fraction
    plate = fill_holes(np.nan_to_num(plate), holes) if holes.any() else plate
    return plate.round().clip(0, 255).astype(np.uint8), fraction


def plate_residual(frames: np.ndarray, person: np.ndarray, plate: np.ndarray) -> float:
    """Mean absolute difference, in grey levels (0-255), between the samples' background pixels and the plate:
    frames [N, S, S, 3] uint8, person [N, S, S] bool (grown), plate [S, S, 3] uint8. Under 1 for a still camera,
    steady light and a still background; a moving camera, changing light or motion behind the person raise it."""
    total, count = 0.0, 0
    for frame, hidden in zip(frames, person):
        seen = ~hidden
        total += float(np.abs(frame[seen].astype(np.float32) - plate[seen]).sum())
        count += int(seen.sum()) * 3
    return total / count if count else 0.0


def fill_holes(image: np.ndarray, holes: np.ndarray) -> np.ndarray:
    """image [S, S, 3] float32 with holes [S, S] bool -> the holes filled smoothly from their surroundings.

    Push-pull: halve the image, averaging only known pixels, until nothing is missing; then walk back up, filling
    each level's holes from the level below. Large holes (a person who never moves) get a soft blend of the
    background around them instead of the streaks that edge-propagating inpainting draws across them.
    """
    import cv2

    known = (~holes).astype(np.float32)
    levels = [(image * known[..., None], known)]
    while (levels[-1][1] <= 0).any() and min(levels[-1][1].shape) > 1:
        weighted, weight = levels[-1]
        size = (max(1, weighted.shape[1] // 2), max(1, weighted.shape[0] // 2))
        levels.append((cv2.resize(weighted, size, interpolation=cv2.INTER_AREA),
                       cv2.resize(weight, size, interpolation=cv2.INTER_AREA)))
    weighted, weight = levels[-1]
    filled = weighted / np.maximum(weight, 1e-6)[..., None]
    for weighted, weight in reversed(levels[:-1]):
        coarse = cv2.resize(filled, (weight.shape[1], weight.shape[0]), interpolation=cv2.INTER_LINEAR)
        alpha = np.clip(weight, 0.0, 1.0)[..., None]
        filled = alpha * (weighted / np.maximum(weight, 1e-6)[..., None]) + (1.0 - alpha) * coarse
    return np.where(holes[..., None], filled, image)
