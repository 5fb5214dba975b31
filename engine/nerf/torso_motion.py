"""Torso motion the head pose does not explain (breath, posture), measured per frame from the dataset.

The upper-body field follows the head pose through its anchors, but a chest also rises and falls with each breath
and a torso turns a moment after the head. Trained without knowing it, the field averages those frames: on the
demo presenter three quarters of the validation error sat on the torso (26.6 dB there against 32.4 on the head).
So each frame's torso shift is measured here: Lucas-Kanade on the shoulders and chest (their weights as the
renderer applies a shift, `shoulder_weights`) against the median training frame, less the part a linear function
of the head pose explains (the anchors' job). How far the rows below the shoulders move with them is measured
first (`measure_profile`: each band aligned on its own), not assumed. Training reads the field at the shifted
coordinates, validation and `eval` use each frame's own shift (as they use its tracked head pose). The live engine
drives the vertical part with the breathing controller at the rise measured here, and the horizontal part from the
head's recent poses where the recorded torso turned after its head (`fit_follow`). The demo presenter retrained
this way: torso 33.4 dB, whole frame 30.9 -> 35.0 dB (20 validation frames), in the same training time.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage, signal

from engine.data.dataset import HAND, HEAD, TORSO
from engine.nerf.camera import Intrinsics, euler_to_matrix
from engine.nerf.upper_body import ANCHORS_CM, PROFILE_EDGE, anchor_rows, shoulder_weights

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
PROFILE_BANDS = 6
"""Bands of rows from the shoulder line to the frame's bottom edge whose share of the shift is measured."""
PROFILE_FRAMES = 1500
"""Training frames (evenly spread) the bands are aligned in."""
MIN_PROFILE_MOTION_PX = 0.1
"""Least deviation (work pixels) of the top band's motion on an axis for the other bands' gains to be read."""
MAX_PROFILE_GAIN = 1.5
"""Largest share of the shoulders' shift a lower band may take."""
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


def _grey(frame: np.ndarray, factor: int) -> np.ndarray:
    """An RGB frame [S, S, 3] -> its grey level, box-averaged by `factor` and blurred (what is aligned)."""
    return ndimage.gaussian_filter(_shrink(frame.mean(-1), factor), 1.0)


def rest_anchor_rows(euler_deg: np.ndarray, trans: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """[T, 2] rows (fractions of the side) of the chin and the shoulder line of the untrained anchors, per head
    pose: where the shift's weights fall before training has moved the anchors."""
    anchors = torch.tensor(ANCHORS_CM, dtype=torch.float64)
    rotations = euler_to_matrix(torch.as_tensor(euler_deg, dtype=torch.float64))
    chin, shoulders = anchor_rows(anchors, rotations, torch.as_tensor(trans, dtype=torch.float64), intrinsics)
    return torch.stack([chin, shoulders], -1).numpy()


@dataclass
class RestTorso:
    """The rest torso the frames are aligned to: the median of the reference frames, box-averaged to the work side
    and blurred, with its gradients and the torso's pixels (grown 2 px, so the shoulders' outline counts)."""

    frames: np.ndarray
    regions: np.ndarray
    factor: int
    image: np.ndarray
    grad_x: np.ndarray
    grad_y: np.ndarray
    y_idx: np.ndarray
    x_idx: np.ndarray

    @classmethod
    def of(cls, frames: np.ndarray, regions: np.ndarray, reference: np.ndarray) -> RestTorso:
        """frames [T, S, S, 3] uint8 and regions [T, S, S] uint8 (0 / TORSO / HEAD) of a dataset; the rest torso is
        the median of the `reference` frames."""
        factor = max(1, frames.shape[1] // WORK_SIDE)
        image = np.median(np.stack([_grey(frames[t], factor) for t in reference]), 0)
        torso = np.median(np.stack([_shrink(regions[t] == TORSO, factor) for t in reference]), 0) > 0.5
        grad_y, grad_x = np.gradient(image)
        y_idx, x_idx = np.nonzero(ndimage.binary_dilation(torso, iterations=2))
        return cls(frames, regions, factor, image, grad_x, grad_y, y_idx, x_idx)

    @property
    def rows(self) -> np.ndarray:
        """[P] the torso pixels' rows, fractions of the side."""
        return (self.y_idx + 0.5) / self.image.shape[0]

    def not_head(self, t: int) -> np.ndarray:
        """[P] the torso pixels the frame's (grown) head and hands do not cover."""
        covered = (self.regions[t] == HEAD) | (self.regions[t] == HAND)
        head = ndimage.binary_dilation(_shrink(covered, self.factor) > 0.5, iterations=2)
        return ~head[self.y_idx, self.x_idx]

    def grey(self, t: int) -> np.ndarray:
        """Frame t as it is aligned: grey, at the work side, blurred."""
        return _grey(self.frames[t], self.factor)

    def align(self, grey: np.ndarray, pick: np.ndarray, weight: np.ndarray) -> np.ndarray:
        """The shift (x, y; work pixels) of a frame's `grey` image over the torso pixels `pick` [P] with per-axis
        weights [P, 2]."""
        y, x = self.y_idx[pick], self.x_idx[pick]
        return _align(grey[y, x], self.image, self.grad_x, self.grad_y, y, x, weight[pick])


def measure_shifts(rest: RestTorso, rows: np.ndarray, progress: bool = False,
                   profile: tuple[tuple[float, ...], ...] = ()) -> np.ndarray:
    """Each frame's torso shift [T, 2] (x, y; fractions of the side) against the rest torso.

    rows [T, 2]: the chin's and the shoulder line's rows per frame (fractions of the side). A shift s means the
    frame shows the rest torso read at p + w(p) s, w = shoulder_weights with `profile`: the way the renderer
    applies it.
    """
    from tqdm import tqdm

    frames = rest.frames
    y_frac = torch.as_tensor(rest.rows, dtype=torch.float64)
    shifts = np.zeros((len(frames), 2))
    for t in tqdm(range(len(frames)), desc="torso motion", unit="frame", disable=not progress):
        weight = shoulder_weights(torch.tensor(rows[t, 0]), torch.tensor(rows[t, 1]), y_frac, profile).numpy()
        keep = (weight.max(1) > 0.05) & rest.not_head(t)
        if keep.sum() < 50:
            continue  # no torso to see: the frame keeps the rest position
        shifts[t] = rest.align(rest.grey(t), keep, weight)
    return shifts * rest.factor / frames.shape[1]


def measure_profile(rest: RestTorso, rows: np.ndarray, picks: np.ndarray, bands: int = PROFILE_BANDS,
                    progress: bool = False) -> tuple[tuple[float, ...], ...]:
    """How far each of `bands` bands of rows, from the shoulder line to the frame's bottom edge, moves with the band
    under the shoulders: (x gains, y gains), each band aligned on its own in the frames `picks` and regressed on the
    top band. Whether a chest and belly rise with a breath, and a lower torso turns as far as the shoulders, is the
    recorded person's own, not an assumption. A band too small to align, or an axis on which the torso never
    moved, keeps the falloff avatars before it assumed (1 - its centre's depth)."""
    from tqdm import tqdm

    moved = np.full((len(picks), bands, 2), np.nan)
    for i, t in enumerate(tqdm(picks, desc="torso rows", unit="frame", disable=not progress)):
        depth = np.clip((rest.rows - rows[t, 1]) / max(1.0 - rows[t, 1], 0.05), 0.0, 0.999)
        inside = (rest.rows > rows[t, 1]) & (rest.rows < 1.0 - PROFILE_EDGE) & rest.not_head(t)
        grey, whole = rest.grey(t), np.ones((len(inside), 2))
        for k in range(bands):
            band = inside & (np.floor(depth * bands) == k)
            if band.sum() >= 50:
                moved[i, k] = rest.align(grey, band, whole)
    profile = np.tile(1.0 - (np.arange(bands) + 0.5) / bands, (2, 1))  # the assumed falloff
    for axis in range(2):
        for k in range(bands):
            both = np.isfinite(moved[:, 0, axis]) & np.isfinite(moved[:, k, axis])
            if both.sum() < 20:
                continue
            lead = moved[both, 0, axis] - moved[both, 0, axis].mean()
            if lead.std() > MIN_PROFILE_MOTION_PX:
                follow = moved[both, k, axis] - moved[both, k, axis].mean()
                profile[axis, k] = np.clip((follow @ lead) / (lead @ lead), 0.0, MAX_PROFILE_GAIN)
    return tuple(tuple(round(float(g), 4) for g in gains) for gains in profile)


def _align(seen: np.ndarray, rest: np.ndarray, grad_x: np.ndarray, grad_y: np.ndarray, y: np.ndarray, x: np.ndarray,
           weight: np.ndarray) -> np.ndarray:
    """Gauss-Newton for (sx, sy) in work pixels and a brightness offset: seen(p) ~ rest(p + weight s) + b, with
    weight [P, 2] per axis.

    Residuals are Huber-weighted from the second step on, so a hand passing over the chest does not drag the
    shift along."""
    s, offset, robust = np.zeros(2), 0.0, np.ones(len(weight))
    for step_index in range(ITERATIONS):
        coords = np.stack([y + weight[:, 1] * s[1], x + weight[:, 0] * s[0]])
        predicted = ndimage.map_coordinates(rest, coords, order=1, mode="nearest")
        residual = seen - predicted
        if step_index:
            error = np.abs(residual - offset)
            scale = 1.4826 * np.median(error) + 1e-6
            robust = np.minimum(1.0, HUBER * scale / np.maximum(error, 1e-12))
        jacobian = np.stack([weight[:, 0] * ndimage.map_coordinates(grad_x, coords, order=1, mode="nearest"),
                             weight[:, 1] * ndimage.map_coordinates(grad_y, coords, order=1, mode="nearest"),
                             np.ones(len(weight))], 1)
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
    profile: tuple[tuple[float, ...], ...] = ()
    """`measure_profile`'s (x gains, y gains) of the rows below the shoulders; (): the assumed falloff."""


def measure_torso_motion(frames: np.ndarray, regions: np.ndarray, euler_deg: np.ndarray, trans: np.ndarray,
                         intrinsics: Intrinsics, train: np.ndarray, val: np.ndarray, fps: float,
                         progress: bool = False) -> TorsoMotion:
    """Shifts, breathing rise and turn-following of a dataset (frames, regions, head poses, split)."""
    rows = rest_anchor_rows(euler_deg, trans, intrinsics)
    reference = train[np.unique(np.linspace(0, len(train) - 1, REFERENCE_FRAMES).round().astype(int))]
    picks = np.sort(train)[np.unique(np.linspace(0, len(train) - 1, PROFILE_FRAMES).round().astype(int))]
    rest = RestTorso.of(frames, regions, reference)
    profile = measure_profile(rest, rows, picks, progress=progress)
    measured = measure_shifts(rest, rows, progress, profile)
    shifts = unexplained(measured, euler_deg, trans, train)
    return TorsoMotion(shifts.astype(np.float32), breathing_rise(shifts[np.sort(train), 1], fps),
                       fit_follow(shifts[:, 0], euler_deg, trans, train, val, fps), profile)

