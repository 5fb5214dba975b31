"""LPIPS (whole frame and lip crop) and FID of the eval's frames, through engine.perceptual.

Both are optional: where the module or its weights are missing, a measure comes back as None with the reason beside
it (`<name>_unavailable`), and the eval goes on. engine.perceptual is imported only when a measure is taken, so
the report's other figures never wait for torch networks they do not need. FID takes at most FID_MAX_FRAMES frames
of each run, evenly spaced over it.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.eval import metrics

LIP_SIDE = 64
"""Lip crops are resized to this square side (pixels) before LPIPS, so every frame's patch weighs the same."""
LIP_MARGIN = 0.25
"""The lip box reaches this fraction of the lips' extent beyond them on every side (chin and philtrum in view)."""
MIN_FID_FRAMES = 2
"""FID compares the mean and covariance of two frame sets: fewer frames on either side leave it undefined."""
FID_MAX_FRAMES = 200
"""FID takes at most this many frames of each side, evenly spaced over the run. Why 200: FID's small-sample bias
falls as 1/N (Chong & Forsyth 2020), so 200 frames carry half the bias of 100; 25 fps neighbours are near duplicates,
so frames spread over the run sample its poses and mouths where as many consecutive ones would not; and each frame
costs an Inception-v3 pass (0.4-1.2 s on the 2-core CPU, measured under load): 1.5-4 min a side, where a 90 s run
uncapped (2250 frames) would add 15-45 min. Both sides share the cap, so runs of any length compare at the same N."""


def resize(frame: np.ndarray, size: int) -> np.ndarray:
    """RGB [S, S, 3] uint8 -> [size, size, 3] uint8 (area-averaged when shrinking)."""
    if frame.shape[0] == size and frame.shape[1] == size:
        return frame
    from skimage.transform import resize as sk_resize

    out = sk_resize(frame, (size, size), order=1, anti_aliasing=frame.shape[0] > size, preserve_range=True)
    return (out + 0.5).clip(0, 255).astype(np.uint8)


def _import_perceptual():
    """engine.perceptual, or the reason it cannot be imported (str)."""
    import importlib

    try:
        return importlib.import_module("engine.perceptual")
    except ImportError as error:
        return f"engine.perceptual cannot be imported ({error}); LPIPS and FID need it"


def _attempt(name: str, measure: Callable[[Any], Any]) -> tuple[Any, str | None]:
    """(measure(perceptual module), None), or (None, reason) when the module or its weights are missing."""
    module = _import_perceptual()
    if isinstance(module, str):
        return None, module
    try:
        return measure(module), None
    except module.WeightsUnavailable as error:
        return None, f"{name}: {error}"


def lip_boxes(landmarks: np.ndarray, size: int, margin: float = LIP_MARGIN) -> np.ndarray:
    """Square lip boxes from face landmarks [T, 478, 2] (pixels of size x size frames) -> [T, 3] int (x0, y0, side),
    kept inside the frame; side 0 where the lips were not found (NaN landmarks)."""
    lips = np.asarray(landmarks, np.float64)[:, list(metrics.LIPS)]
    boxes = np.zeros((len(lips), 3), np.int64)
    for t, points in enumerate(lips):
        if not np.isfinite(points).all():
            continue
        low, high = points.min(axis=0), points.max(axis=0)
        side = min(size, max(8, int(round(float((high - low).max()) * (1.0 + 2.0 * margin)))))
        x0, y0 = (int(round(c - side / 2.0)) for c in (low + high) / 2.0)
        boxes[t] = (min(max(x0, 0), size - side), min(max(y0, 0), size - side), side)
    return boxes


def lip_crops(frames: list[np.ndarray] | np.ndarray, boxes: np.ndarray, side: int = LIP_SIDE) -> np.ndarray:
    """RGB frames [T, S, S, 3] uint8 and boxes [T, 3] -> crops [T', side, side, 3] uint8 of the frames whose box
    was found (side > 0), in order."""
    crops = [resize(np.ascontiguousarray(frame[y:y + s, x:x + s]), side)
             for frame, (x, y, s) in zip(frames, boxes) if s > 0]
    return np.stack(crops) if crops else np.zeros((0, side, side, 3), np.uint8)


def measure_lpips(renders: list[np.ndarray], truth: list[np.ndarray], boxes: np.ndarray,
                  truth_boxes: np.ndarray | None = None) -> dict[str, Any]:
    """LPIPS of paired frames [T, S, S, 3] uint8, whole frame and lip crop (boxes [T, 3] from `lip_boxes` on the
    renders, truth_boxes on the truth: the same boxes when None, as for a reconstruction that holds the true pose):
    {"lpips", "lpips_lips", "lpips_lip_frames"} plus "lpips_unavailable" (the reason) when it cannot run."""
    a, b = np.stack(renders), np.stack(truth)
    truth_boxes = boxes if truth_boxes is None else truth_boxes
    found = (boxes[:, 2] > 0) & (truth_boxes[:, 2] > 0)
    frame, reason = _attempt("LPIPS", lambda p: float(np.mean(p.lpips_distance(a, b))))
    result: dict[str, Any] = {"lpips": frame, "lpips_lips": None, "lpips_lip_frames": int(found.sum()),
                              "lpips_lip_side": LIP_SIDE}
    if reason is not None:
        return {**result, "lpips_unavailable": reason, "lpips_lips_unavailable": reason}
    if not found.any():
        return {**result, "lpips_lips_unavailable": "no frame with the lips found on both sides"}
    result["lpips_lips"], reason = _attempt("LPIPS", lambda p: float(np.mean(
        p.lpips_distance(lip_crops(a[found], boxes[found]), lip_crops(b[found], truth_boxes[found])))))
    return result if reason is None else {**result, "lpips_lips_unavailable": reason}


def evenly_spaced(count: int, cap: int) -> np.ndarray:
    """Indices [min(count, cap)] of `cap` frames evenly spaced from the first of `count` to the last (all of them
    when count <= cap)."""
    if count <= cap:
        return np.arange(count)
    return np.linspace(0, count - 1, cap).round().astype(np.int64)


@dataclass
class FidSet:
    """The frames of one run that FID takes (at most FID_MAX_FRAMES, evenly spaced) and their Inception features once
    computed: a reference compared with several runs (the validation frames) goes through the network once."""

    frames: list[np.ndarray]
    """The sampled frames, [S, S, 3] uint8 each, in order."""
    run_frames: int
    """Frames in the run they were taken from."""
    features: np.ndarray | None = None
    """[len(frames), 2048] Inception-v3 pool features, once computed."""


def fid_set(frames: Sequence[np.ndarray]) -> FidSet:
    """At most FID_MAX_FRAMES of a run's frames, evenly spaced over it."""
    return FidSet([frames[i] for i in evenly_spaced(len(frames), FID_MAX_FRAMES)], len(frames))


def _features(perceptual, frames: FidSet) -> np.ndarray:
    if frames.features is None:
        frames.features = perceptual.inception_features(np.stack(frames.frames))
    return frames.features


def measure_fid(frames: Sequence[np.ndarray] | FidSet, reference: Sequence[np.ndarray] | FidSet,
                reference_name: str) -> dict[str, Any]:
    """FID of a run's frames against a reference's (each [N, S, S, 3] uint8 or a FidSet of them, unpaired), at most
    FID_MAX_FRAMES a side: {"fid", "fid_frames" (used), "fid_run_frames", "fid_max_frames", "fid_reference"} plus
    "fid_unavailable" when it cannot be measured."""
    a, b = (s if isinstance(s, FidSet) else fid_set(s) for s in (frames, reference))
    used = [len(a.frames), len(b.frames)]
    result: dict[str, Any] = {"fid": None, "fid_frames": used, "fid_run_frames": [a.run_frames, b.run_frames],
                              "fid_max_frames": FID_MAX_FRAMES, "fid_reference": reference_name}
    if min(used) < MIN_FID_FRAMES:
        return {**result, "fid_unavailable": f"FID needs at least {MIN_FID_FRAMES} frames on each side "
                                             f"({used[0]} and {used[1]} here)"}
    value, reason = _attempt("FID", lambda p: p.frechet_distance(_features(p, a), _features(p, b)))
    result["fid"] = value
    return result if reason is None else {**result, "fid_unavailable": reason}
