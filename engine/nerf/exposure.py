"""Each frame's exposure, measured on the background it shows against the dataset's background plate.

A webcam re-exposes as a person leans in or out, or as the light changes: the wall behind them brightens and darkens
by a few percent over a take. A field trained on those frames as they are learns the average exposure, and renders
of frames taken darker or brighter are off across the whole picture. Training multiplies its renders by each frame's
exposure before comparing them with the frame, so the field learns the plate's exposure; validation and the eval
render each frame with its exposure, as they render it with its tracked pose; the live engine, with no camera to
follow, renders at the plate's."""
from __future__ import annotations

import numpy as np
from tqdm import tqdm

MARGIN = 1 / 20
"""Pixels of the background closer to the person than this share of the side are left out (hair, shadows, the
masks' edge)."""
MIN_SHARE = 0.02
"""A frame showing less background than this share of its pixels keeps exposure 1 (nothing to measure it on)."""
RANGE = (0.5, 2.0)
"""Exposures outside it are taken for a broken measurement and clipped into it."""


def measure_exposure(frames: np.ndarray, regions: np.ndarray, background: np.ndarray,
                     progress: bool = False) -> np.ndarray:
    """[T, 3] float32: each frame's colour over the plate's, per channel (the median over its background pixels
    away from the person that are neither near black nor saturated on either side; 1 where too few).

    frames [T, S, S, 3] uint8; regions [T, S, S] uint8 (0: background); background [S, S, 3] uint8, the plate."""
    from scipy import ndimage

    size = regions.shape[-1]
    reach = max(1, round(MARGIN * size))
    plate = background.astype(np.float32)
    usable_plate = ((plate > 16) & (plate < 240)).all(-1)
    out = np.ones((len(frames), 3), np.float32)
    for t in tqdm(range(len(frames)), desc="exposure", unit="frame", disable=not progress):
        person = ndimage.maximum_filter(regions[t] > 0, size=2 * reach + 1)
        frame = frames[t]
        usable = ~person & usable_plate & ((frame > 8) & (frame < 247)).all(-1)
        if usable.mean() < MIN_SHARE:
            continue
        out[t] = np.median(frame[usable].astype(np.float32) / plate[usable], axis=0)
    return np.clip(out, *RANGE).astype(np.float32)
