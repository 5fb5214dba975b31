"""Evaluation metrics as pure numpy functions: image quality, MediaPipe landmark measures, blinks, pose.

Stable names other modules import (keep them): `psnr`, `ssim`, `lmd`, `eye_aspect_ratio`, `count_blinks`,
`blinks_per_minute`, `pose_diversity`, `pose_std`, `mouth_opening`, `correlation`, `blink_depth`, `mouth_depth`,
`ear_thresholds`, `blink_thresholds`, `ear_error`, and the landmark index tuples `LIPS`, `INNER_LIP_GAP`,
`LEFT_EYE`, `RIGHT_EYE`, `FACE_HEIGHT`.

Conventions: images are [H, W, C] (or [N, H, W, C]) uint8 or float in [0, 1]; landmarks are MediaPipe FaceLandmarker
points, [478, 2] or [T, 478, 2], in pixels; per-frame curves are [T] at the video frame rate. The speech mask and
envelope live in engine.audio.activity. Nothing here imports torch or MediaPipe.
"""
from __future__ import annotations

import numpy as np

# MediaPipe face mesh indices (FACEMESH_LIPS: outer and inner lip contours, 40 points).
LIPS: tuple[int, ...] = (
    61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 185, 40, 39, 37, 0, 267, 269, 270, 409,
    78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 191, 80, 81, 82, 13, 312, 311, 310, 415,
)
INNER_LIP_GAP: tuple[int, int] = (13, 14)
"""Upper and lower inner-lip midpoints: their distance is how far the mouth is open."""
FACE_HEIGHT: tuple[int, int] = (10, 152)
"""Forehead top and chin: the face height that normalises the mouth opening."""
# Eye contours in the order p1..p6 of Soukupova and Cech's EAR: corners p1, p4; upper lid p2, p3; lower lid p6, p5.
RIGHT_EYE: tuple[int, ...] = (33, 160, 158, 133, 153, 144)
"""The subject's right eye (image left): outer corner, two upper-lid points, inner corner, two lower-lid points."""
LEFT_EYE: tuple[int, ...] = (362, 385, 387, 263, 373, 380)
"""The subject's left eye (image right), in the same p1..p6 order."""

def _float_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image.astype(np.float64) / 255.0
    return image.astype(np.float64)


def psnr(pred: np.ndarray, truth: np.ndarray, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB of pred vs truth, both [H, W, C] or [N, H, W, C] (uint8 is scaled to
    [0, 1]; then data_range is 1). A batch gives the mean of the per-image PSNRs; identical images give inf."""
    a, b = _float_image(pred), _float_image(truth)
    if a.shape != b.shape:
        raise ValueError(f"psnr: shapes differ, {a.shape} vs {b.shape}")
    if a.ndim == 4:
        return float(np.mean([psnr(x, y, data_range) for x, y in zip(a, b)]))
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0.0 else float(10.0 * np.log10(data_range ** 2 / mse))


def ssim(pred: np.ndarray, truth: np.ndarray) -> float:
    """Structural similarity (scikit-image, 7x7 uniform window, per channel, averaged) of [H, W, C] or
    [N, H, W, C] images (uint8 or float in [0, 1]); a batch gives the mean. Identical images give 1."""
    from skimage.metrics import structural_similarity

    a, b = _float_image(pred), _float_image(truth)
    if a.shape != b.shape:
        raise ValueError(f"ssim: shapes differ, {a.shape} vs {b.shape}")
    if a.ndim == 4:
        return float(np.mean([ssim(x, y) for x, y in zip(a, b)]))
    return float(structural_similarity(a, b, data_range=1.0, channel_axis=-1 if a.ndim == 3 else None))


def lmd_per_frame(pred: np.ndarray, truth: np.ndarray, indices: tuple[int, ...] = LIPS) -> np.ndarray:
    """Mean distance over the `indices` landmarks, per frame: pred, truth [T, 478, 2] pixels -> [T] pixels.
    Frames where either side has NaN landmarks (no face found) give NaN."""
    p, t = np.asarray(pred, np.float64), np.asarray(truth, np.float64)
    if p.shape != t.shape:
        raise ValueError(f"lmd: shapes differ, {p.shape} vs {t.shape}")
    idx = list(indices)
    return np.linalg.norm(p[:, idx] - t[:, idx], axis=-1).mean(-1)


def lmd(pred: np.ndarray, truth: np.ndarray, indices: tuple[int, ...] = LIPS) -> float:
    """Mouth landmark distance (LMD): pred, truth [T, 478, 2] in pixels of the compared image size -> the mean
    Euclidean distance over the lip landmarks and over the frames where both have a face (NaN if none)."""
    per_frame = lmd_per_frame(pred, truth, indices)
    finite = per_frame[np.isfinite(per_frame)]
    return float(finite.mean()) if len(finite) else float("nan")


def eye_aspect_ratio(landmarks: np.ndarray) -> np.ndarray:
    """Eye aspect ratio (Soukupova and Cech 2016), mean of both eyes: landmarks [..., 478, 2] -> [...].

    EAR = (|p2 - p6| + |p3 - p5|) / (2 |p1 - p4|): about 0.25-0.35 open, near 0 closed; scale-free."""
    points = np.asarray(landmarks, np.float64)

    def one(eye: tuple[int, ...]) -> np.ndarray:
        p = points[..., list(eye), :]
        d = lambda i, j: np.linalg.norm(p[..., i, :] - p[..., j, :], axis=-1)  # noqa: E731
        return (d(1, 5) + d(2, 4)) / (2.0 * np.maximum(d(0, 3), 1e-9))

    return 0.5 * (one(RIGHT_EYE) + one(LEFT_EYE))


def mouth_opening(landmarks: np.ndarray) -> np.ndarray:
    """Inner-lip gap over face height: landmarks [..., 478, 2] -> [...]; 0 closed, about 0.1-0.2 wide open."""
    points = np.asarray(landmarks, np.float64)
    gap = np.linalg.norm(points[..., INNER_LIP_GAP[0], :] - points[..., INNER_LIP_GAP[1], :], axis=-1)
    height = np.linalg.norm(points[..., FACE_HEIGHT[0], :] - points[..., FACE_HEIGHT[1], :], axis=-1)
    return gap / np.maximum(height, 1e-9)


def count_blinks(curve: np.ndarray, enter: float, exit: float, fps: float, min_gap_s: float = 0.2,
                 closed_is_high: bool = True) -> np.ndarray:
    """Blink onsets in a per-frame eye curve [T] -> frame indices [B] (int).

    Hysteresis: a blink starts where the curve crosses `enter` toward closed and ends where it crosses back past
    `exit` (`exit` lies on the open side of `enter`), so noise around one threshold is not counted twice. An onset
    less than `min_gap_s` after the previous blink's onset is merged into it. closed_is_high=True for a blink
    blendshape (eyeBlink: high = closed; e.g. enter 0.5, exit 0.35), False for EAR (low = closed; e.g.
    `ear_thresholds`). NaN frames (no face) keep the current state. A curve that starts closed does not count
    that first closure.
    """
    values = np.asarray(curve, np.float64)
    sign = 1.0 if closed_is_high else -1.0
    if sign * (enter - exit) <= 0:
        raise ValueError(f"count_blinks: exit={exit} must lie on the open side of enter={enter} "
                         f"({'below' if closed_is_high else 'above'} it)")
    gap = max(1, int(round(min_gap_s * fps)))
    onsets: list[int] = []
    closed = bool(np.isfinite(values[0]) and sign * values[0] >= sign * enter) if len(values) else False
    for t in range(1, len(values)):
        v = values[t]
        if not np.isfinite(v):
            continue
        if not closed and sign * v >= sign * enter:
            closed = True
            if not onsets or t - onsets[-1] >= gap:
                onsets.append(t)
        elif closed and sign * v <= sign * exit:
            closed = False
    return np.asarray(onsets, np.int64)


def blinks_per_minute(onsets: np.ndarray | int, frames: int, fps: float) -> float:
    """Blink rate: onsets [B] (or their count) in a clip of `frames` frames at `fps` -> blinks per minute.
    People blink about 15-20 times a minute in conversation."""
    count = int(onsets) if np.ndim(onsets) == 0 else len(onsets)
    minutes = frames / fps / 60.0
    return float(count / minutes) if minutes > 0 else float("nan")


def ear_thresholds(ear: np.ndarray, enter: float = 0.7, exit: float = 0.85) -> tuple[float, float]:
    """Hysteresis thresholds for `count_blinks` on an EAR curve [T], relative to the clip's open-eye level (its
    median, since eyes are open most of the time): closed below enter x open, open again above exit x open."""
    finite = np.asarray(ear, np.float64)
    finite = finite[np.isfinite(finite)]
    level = float(np.median(finite)) if len(finite) else float("nan")
    return enter * level, exit * level


def blink_thresholds(curve: np.ndarray, enter_rise: float = 0.2, exit_rise: float = 0.1) -> tuple[float, float]:
    """Hysteresis thresholds for `count_blinks` on an eyeBlink blendshape curve [T], relative to the clip's
    open-eye level (its median): closed above median + enter_rise, open again below median + exit_rise.

    Relative because MediaPipe's eyeBlink scale depends on the face: a synthetic presenter's full blinks peak at
    0.43-0.48 over an open level of 0.11, a real face's at 0.6-0.9; a fixed 0.5 misses the first."""
    finite = np.asarray(curve, np.float64)
    finite = finite[np.isfinite(finite)]
    level = float(np.median(finite)) if len(finite) else float("nan")
    return level + enter_rise, level + exit_rise


def pose_std(euler_deg: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Head-motion amount: euler_deg [T, 3] (degrees) over the frames in mask [T] (all if None) -> the per-axis
    standard deviation averaged over the 3 axes, degrees (NaN with fewer than 2 frames). Frames with a NaN angle
    (poses measured on frames where no face was found) are left out."""
    pose = np.asarray(euler_deg, np.float64).reshape(-1, 3)
    if mask is not None:
        pose = pose[np.asarray(mask, bool)]
    pose = pose[np.isfinite(pose).all(axis=1)]
    if len(pose) < 2:
        return float("nan")
    return float(pose.std(axis=0).mean())


def pose_diversity(euler_deg: np.ndarray, speech: np.ndarray) -> dict[str, float]:
    """Pose diversity in speech and in silence: euler_deg [T, 3] degrees, speech bool [T] (e.g. `speech_mask`)
    -> {"speech": pose_std over speech frames, "silence": pose_std over the other frames,
        "ratio": speech / silence (how much more the head moves while talking; NaN when undefined),
        "all": pose_std over every frame (the paper's Diversity column, in degrees)}."""
    speech = np.asarray(speech, bool)
    if len(speech) != len(euler_deg):
        raise ValueError(f"pose_diversity: {len(euler_deg)} poses but {len(speech)} mask frames")
    s, q = pose_std(euler_deg, speech), pose_std(euler_deg, ~speech)
    ratio = s / q if np.isfinite(s) and np.isfinite(q) and q > 0 else float("nan")
    return {"speech": s, "silence": q, "ratio": float(ratio), "all": pose_std(euler_deg)}


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two curves [T] over the frames where both are finite (NaN if fewer than 3 such
    frames or either is constant there)."""
    x, y = np.asarray(a, np.float64).reshape(-1), np.asarray(b, np.float64).reshape(-1)
    if len(x) != len(y):
        raise ValueError(f"correlation: lengths differ, {len(x)} vs {len(y)}")
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) < 3 or x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def _depth_at(render: np.ndarray, truth: np.ndarray, pick) -> float:
    """How far a rendered curve [T] moves from its median at the frames `pick(truth)` selects, as a fraction of how
    far the truth [T] moves there (finite frames of both only; NaN when none is picked)."""
    r, t = np.asarray(render, np.float64), np.asarray(truth, np.float64)
    keep = np.isfinite(r) & np.isfinite(t)
    r, t = r[keep], t[keep]
    if len(t) == 0:
        return float("nan")
    chosen = pick(t)
    if not chosen.any():
        return float("nan")
    return float((np.median(r) - r[chosen].mean()) / (np.median(t) - t[chosen].mean()))


def blink_depth(render_ear: np.ndarray, truth_ear: np.ndarray, closed: float = 0.75) -> float:
    """How deep rendered blinks close, as a fraction of the truth's, from EAR curves [T] of the same frames: the drop
    from each curve's median (open eyes) to its mean over the frames where the truth's EAR is below `closed` times
    its median. 1 renders blinks as deep as the frames had them, 0 keeps the eyes open; NaN without closed frames."""
    return _depth_at(render_ear, truth_ear, lambda t: t < closed * np.median(t))


def mouth_depth(render_open: np.ndarray, truth_open: np.ndarray, wide: float = 0.9) -> float:
    """How wide rendered mouths open where the truth's opens widest, as a fraction of the truth's, from mouth
    opening curves [T] of the same frames: the rise from each curve's median to its mean over the frames above the
    truth's `wide` quantile. 1 opens as wide as the frames did; below 1 is the muted mouth of an under-fitted or
    over-smoothed renderer; NaN when the truth never opens beyond its median."""
    return _depth_at(render_open, truth_open, lambda t: (t > np.quantile(t, wide)) & (t > np.median(t)))


def masked_mean(values: np.ndarray, mask: np.ndarray) -> float:
    """Mean of values [T] over the finite frames where mask [T] is True (NaN if none)."""
    v = np.asarray(values, np.float64)[np.asarray(mask, bool)]
    v = v[np.isfinite(v)]
    return float(v.mean()) if len(v) else float("nan")


def mouth_above_rest(opening: np.ndarray, speech: np.ndarray) -> dict[str, float]:
    """Mouth opening [T] above the face's own closed level, in speech [T] bool and in silence.

    The rest level is the 5th percentile of the clip's opening: a face whose lips part slightly at rest (the
    synthetic presenter's smile shows its teeth, about 0.06 of the face height) still has a closed-mouth level,
    and "the mouth closes in silence" means returning to it. Returns rest, speech, silence and silence / speech."""
    values = np.asarray(opening, np.float64)
    finite = values[np.isfinite(values)]
    rest = float(np.percentile(finite, 5)) if len(finite) else float("nan")
    above = values - rest
    speech_level, silence_level = masked_mean(above, speech), masked_mean(above, ~np.asarray(speech, bool))
    ratio = silence_level / speech_level if speech_level > 0 else float("nan")
    return {"rest": rest, "speech": speech_level, "silence": silence_level, "silence_over_speech": ratio}



def ear_error(render_ear: np.ndarray, truth_ear: np.ndarray) -> float:
    """The paper's EAR column: mean absolute difference of two eye aspect ratio curves [T] of the same frames, over
    the frames where both are finite (NaN if none). 0 opens and closes the eyes exactly as the truth did."""
    r, t = np.asarray(render_ear, np.float64), np.asarray(truth_ear, np.float64)
    if r.shape != t.shape:
        raise ValueError(f"ear_error: shapes differ, {r.shape} vs {t.shape}")
    keep = np.isfinite(r) & np.isfinite(t)
    return float(np.abs(r[keep] - t[keep]).mean()) if keep.any() else float("nan")
