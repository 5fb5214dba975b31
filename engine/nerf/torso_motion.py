"""Torso motion the head pose does not explain (breath, posture), measured per frame from the dataset.

The upper-body field follows the head pose through its anchors, but a chest also rises and falls with each breath
and a torso turns a moment after the head. Trained without knowing it, the field averages those frames: on the
demo presenter three quarters of the validation error sat on the torso (26.6 dB there against 32.4 on the head).
So each frame's torso shift is measured here: Lucas-Kanade on the shoulders and chest (their weights as the
renderer applies a shift, `shoulder_weights`) against the median training frame, less the part a linear function
of the head pose explains (the anchors' job). Training reads the field at the shifted coordinates, validation and
`eval` use each frame's own shift (as they use its tracked head pose). The live engine drives the vertical part
with the breathing controller at the rise measured here, and the horizontal part from the head's recent poses
where the recorded torso turned after its head (`fit_follow`). The demo presenter retrained this way: torso
30.6 dB, whole frame 30.9 -> 33.7 dB (20 validation frames), in the same training time.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage, signal

from engine.data.dataset import HEAD, TORSO
from engine.nerf.camera import Intrinsics, euler_to_matrix
from engine.nerf.upper_body import ANCHORS_CM, anchor_rows, shoulder_weights

WORK_SIDE = 256
"""Frames are measured at about this side (box-averaged down), which keeps a 512 px dataset's pass short."""
REFERENCE_FRAMES = 200
"""Training frames whose median is the rest torso the shifts are measured against."""
ITERATIONS = 3
"""Gauss-Newton steps per frame (shifts stay within a few pixels)."""
HUBER = 1.5
"""Residuals beyond this many robust deviations count less (Huber), from the second step on."""
BREATH_BAND_HZ = (0.1, 0.7)
"""Resting breath rates (6-42 a minute); the rise is read from the vertical shift in this band."""
MAX_RISE = 0.01
"""Largest breathing rise kept (fraction of the side): a resting breath lifts the shoulders about half a
centimetre, under 1% of a head-and-shoulders frame; more in the band is posture swaying, not breath."""


def _shrink(image: np.ndarray, factor: int) -> np.ndarray:
    """[S, S, ...] -> box average over factor x factor pixels (the side cut to a multiple of factor)."""
    if factor == 1:
        return image.astype(np.float32)
    side = image.shape[0] // factor * factor
    cut = image[:side, :side].astype(np.float32)
    return cut.reshape(side // factor, factor, side // factor, factor, *image.shape[2:]).mean((1, 3))


def rest_anchor_rows(euler_deg: np.ndarray, trans: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """[T, 2] rows (fractions of the side) of the chin and the shoulder line of the untrained anchors, per head
    pose: where the shift's weights fall before training has moved the anchors."""
    anchors = torch.tensor(ANCHORS_CM, dtype=torch.float64)
    rotations = euler_to_matrix(torch.as_tensor(euler_deg, dtype=torch.float64))
    chin, shoulders = anchor_rows(anchors, rotations, torch.as_tensor(trans, dtype=torch.float64), intrinsics)
    return torch.stack([chin, shoulders], -1).numpy()


def measure_shifts(frames: np.ndarray, regions: np.ndarray, rows: np.ndarray, reference: np.ndarray,
                   progress: bool = False) -> np.ndarray:
    """Each frame's torso shift [T, 2] (x, y; fractions of the side) against the median of the `reference` frames.

    frames [T, S, S, 3] uint8, regions [T, S, S] uint8 (0 / TORSO / HEAD), rows [T, 2]: the chin's and the
    shoulder line's rows per frame (fractions of the side). A shift s means the frame shows the rest torso read
    at p + w(p) s, w = shoulder_weights: the way the renderer applies it.
    """
    from tqdm import tqdm

    size = frames.shape[1]
    factor = max(1, size // WORK_SIDE)
    side = size // factor
    grey = lambda t: ndimage.gaussian_filter(_shrink(frames[t].mean(-1), factor), 1.0)  # noqa: E731
    rest = np.median(np.stack([grey(t) for t in reference]), 0)
    torso = np.median(np.stack([_shrink(regions[t] == TORSO, factor) for t in reference]), 0) > 0.5
    band = ndimage.binary_dilation(torso, iterations=2)  # the shoulders' outline against the background too
    grad_y, grad_x = np.gradient(rest)
    y_idx, x_idx = np.nonzero(band)
    y_frac = torch.as_tensor((y_idx + 0.5) / side, dtype=torch.float64)
    shifts = np.zeros((len(frames), 2))
    for t in tqdm(range(len(frames)), desc="torso motion", unit="frame", disable=not progress):
        weight = shoulder_weights(torch.tensor(rows[t, 0]), torch.tensor(rows[t, 1]), y_frac).numpy()
        head = ndimage.binary_dilation(_shrink(regions[t] == HEAD, factor) > 0.5, iterations=2)[y_idx, x_idx]
        keep = (weight > 0.05) & ~head
        if keep.sum() < 50:
            continue  # no torso to see: the frame keeps the rest position
        shifts[t] = _align(grey(t)[y_idx[keep], x_idx[keep]], rest, grad_x, grad_y, y_idx[keep], x_idx[keep],
                           weight[keep])
    return shifts * factor / size


def _align(seen: np.ndarray, rest: np.ndarray, grad_x: np.ndarray, grad_y: np.ndarray, y: np.ndarray, x: np.ndarray,
           weight: np.ndarray) -> np.ndarray:
    """Gauss-Newton for (sx, sy) in work pixels and a brightness offset: seen(p) ~ rest(p + weight s) + b.

    Residuals are Huber-weighted from the second step on, so a hand passing over the chest does not drag the
    shift along."""
    s, offset, robust = np.zeros(2), 0.0, np.ones_like(weight)
    for step_index in range(ITERATIONS):
        coords = np.stack([y + weight * s[1], x + weight * s[0]])
        predicted = ndimage.map_coordinates(rest, coords, order=1, mode="nearest")
        residual = seen - predicted
        if step_index:
            error = np.abs(residual - offset)
            scale = 1.4826 * np.median(error) + 1e-6
            robust = np.minimum(1.0, HUBER * scale / np.maximum(error, 1e-12))
        jacobian = np.stack([weight * ndimage.map_coordinates(grad_x, coords, order=1, mode="nearest"),
                             weight * ndimage.map_coordinates(grad_y, coords, order=1, mode="nearest"),
                             np.ones_like(weight)], 1)
        weighted = jacobian * robust[:, None]
        normal = weighted.T @ jacobian + np.diag([1e-3, 1e-3, 0.0]) * robust.sum()
        step = np.linalg.solve(normal, weighted.T @ residual)
        s, offset = np.clip(s + step[:2], -8.0, 8.0), step[2]
    return s


def unexplained(shifts: np.ndarray, euler_deg: np.ndarray, trans: np.ndarray, train: np.ndarray) -> np.ndarray:
    """The shifts [T, 2] less their least-squares fit on the head pose (over the training frames): the anchors
    already move the torso with the head, so only what the pose does not predict is left to the shift."""
    design = np.concatenate([np.ones((len(shifts), 1)), euler_deg, trans], 1).astype(np.float64)
    coef, *_ = np.linalg.lstsq(design[train], shifts[train], rcond=None)
    return shifts - design @ coef


def breathing_rise(shift_y: np.ndarray, fps: float) -> float | None:
    """How far a breath moves the shoulders (fraction of the side): sqrt(2) x the deviation of the vertical
    shift [T] in the breathing band (a sine's amplitude), at most MAX_RISE; None for a clip too short to tell."""
    low, high = BREATH_BAND_HZ
    if len(shift_y) < 4 * fps / low:
        return None
    sos = signal.butter(2, [low, min(high, 0.45 * fps)], btype="band", fs=fps, output="sos")
    return float(min(MAX_RISE, np.sqrt(2.0) * np.std(signal.sosfiltfilt(sos, shift_y))))


FOLLOW_LAGS_S = (0.0, 0.12, 0.24, 0.36)
"""The head poses the live torso's own turn is predicted from: the current one and these far back."""
MIN_FOLLOW_R2 = 0.2
"""Least share of the held-out frames' turn the prediction must explain to be used live."""


def lagged_poses(euler_deg: np.ndarray, trans: np.ndarray, fps: float) -> np.ndarray:
    """[T, 1 + 6 L] design rows: 1, then each lag's head pose (euler, trans), the first pose before the clip."""
    pose = np.concatenate([euler_deg, trans], 1).astype(np.float64)
    columns = [np.ones((len(pose), 1))]
    for lag in FOLLOW_LAGS_S:
        k = min(len(pose), int(round(lag * fps)))
        columns.append(np.concatenate([np.repeat(pose[:1], k, 0), pose[: len(pose) - k]]))
    return np.concatenate(columns, 1)


def fit_follow(shift_x: np.ndarray, euler_deg: np.ndarray, trans: np.ndarray, train: np.ndarray, val: np.ndarray,
               fps: float) -> tuple[float, ...]:
    """Coefficients (over `lagged_poses` rows) that predict the torso's own turn, the horizontal shift [T], from
    the head's recent poses: a torso turns a moment after the head. Fitted on the training frames; () when the
    prediction explains less than MIN_FOLLOW_R2 of the validation frames' turn (or there are none): the live torso
    then follows the head pose alone."""
    if len(val) < 2 or np.var(shift_x[val]) == 0:
        return ()
    design = lagged_poses(euler_deg, trans, fps)
    ridge = 1e-6 * len(train) * np.eye(design.shape[1])
    ridge[0, 0] = 0.0
    coef = np.linalg.solve(design[train].T @ design[train] + ridge, design[train].T @ shift_x[train])
    explained = 1.0 - np.var(shift_x[val] - design[val] @ coef) / np.var(shift_x[val])
    return tuple(float(c) for c in coef) if explained >= MIN_FOLLOW_R2 else ()


def _usable(coef: tuple[float, ...]) -> bool:
    """Coefficients fitted over this engine's lags (none: the torso follows the head pose alone)."""
    return len(coef) == 1 + 6 * len(FOLLOW_LAGS_S)


def follow_track(coef: tuple[float, ...], euler_deg: np.ndarray, trans: np.ndarray, fps: float) -> np.ndarray:
    """The torso's own turn [T] along a whole track of head poses, as `follow_shift` gives it step by step."""
    if not _usable(coef):
        return np.zeros(len(euler_deg))
    return lagged_poses(euler_deg, trans, fps) @ np.asarray(coef)


def follow_shift(coef: tuple[float, ...], times_s: np.ndarray, poses: np.ndarray) -> float:
    """The torso's own turn now (the trail's last time) from a trail of head poses [N, 6] (euler, trans) at
    times_s [N] (increasing; poses before the trail are its first), by `fit_follow`'s coefficients; 0 without usable
    ones or a trail."""
    if not _usable(coef) or not len(times_s):
        return 0.0
    row = [1.0]
    for lag in FOLLOW_LAGS_S:
        row += [float(np.interp(times_s[-1] - lag, times_s, poses[:, c])) for c in range(poses.shape[1])]
    return float(np.dot(coef, row))


@dataclass(frozen=True)
class TorsoMotion:
    """What a dataset's torso did apart from the head."""

    shifts: np.ndarray
    """[T, 2] each frame's shift the head pose does not explain (fractions of the side)."""
    rise: float | None
    """How far a breath raised the shoulders; None: too few training frames to tell."""
    follow: tuple[float, ...]
    """`fit_follow`'s coefficients for the torso's own turn; () where the head's recent poses do not predict it."""


def measure_torso_motion(frames: np.ndarray, regions: np.ndarray, euler_deg: np.ndarray, trans: np.ndarray,
                         intrinsics: Intrinsics, train: np.ndarray, val: np.ndarray, fps: float,
                         progress: bool = False) -> TorsoMotion:
    """Shifts, breathing rise and turn-following of a dataset (frames, regions, head poses, split)."""
    rows = rest_anchor_rows(euler_deg, trans, intrinsics)
    reference = train[np.unique(np.linspace(0, len(train) - 1, REFERENCE_FRAMES).round().astype(int))]
    shifts = unexplained(measure_shifts(frames, regions, rows, reference, progress), euler_deg, trans, train)
    return TorsoMotion(shifts.astype(np.float32), breathing_rise(shifts[np.sort(train), 1], fps),
                       fit_follow(shifts[:, 0], euler_deg, trans, train, val, fps))

