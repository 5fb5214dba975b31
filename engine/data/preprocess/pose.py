"""Raw tracking -> dataset tracks: the stated camera, Euler angles, gap filling and Savitzky-Golay smoothing.

The camera model is MediaPipe's own geometry camera, so the facial transformation matrix needs no refit: a pinhole
at the origin looking down -z (x right, y up, OpenGL), vertical field of view 63 degrees over the tracked frame's
height, principal point at the frame centre. Projecting the canonical mesh through the matrix and this camera lands
on the tracked landmarks (about 1-2 px at 256 px). Cropping and resizing only shift the principal point and scale
the focal length, so translations stay in the same metric camera frame (cm).
"""
from __future__ import annotations

import math

import numpy as np

from engine.data.dataset import Camera, Tracks

MEDIAPIPE_FOVY_DEG = 63.0
"""Vertical field of view MediaPipe's face geometry pipeline assumes (its default environment)."""

CAMERA_MODEL = (
    "pinhole at the origin looking down -z, x right, y up (OpenGL); MediaPipe's geometry camera: 63 deg vertical "
    "field of view over the source frame height, principal point at the source frame centre, carried through the "
    "crop and resize; pixels x right, y down. Head pose: x_cam = R @ x_canonical + trans (MediaPipe canonical face, "
    "cm, y up, nose +z), R = Rz(roll) Ry(yaw) Rx(pitch)"
)

SMOOTHING = {
    "method": "savgol",
    "pose": {"window": 5, "polyorder": 3, "applies_to": ["euler_deg", "trans"]},
    "blendshapes": {"window": 5, "polyorder": 3, "clip": [0.0, 1.0],
                    "unsmoothed": ["eyeBlinkLeft", "eyeBlinkRight"]},
    "landmarks2d": "none (gaps interpolated linearly)",
    "gaps": "frames without a face are interpolated linearly between their neighbours (held at the ends) and "
            "flagged valid = False",
}
"""Recorded in meta.json. Short windows: on synthetic clips MediaPipe's per-frame pose is already within about half a
degree of the truth, and longer windows (7-11 frames) cut real nods more than noise. Blinks last 3-6 frames and
their curves are quiet between blinks (frame-to-frame std 0.01), so the filter would only flatten them (a 3-frame
blink peaked at 0.42 raw, 0.33 smoothed, and the correlation with the truth dropped): they stay unsmoothed."""


def source_focal_px(height: int) -> float:
    """Focal length in source pixels of MediaPipe's camera for frames `height` pixels tall."""
    return (height / 2.0) / math.tan(math.radians(MEDIAPIPE_FOVY_DEG) / 2.0)


def crop_camera(width: int, height: int, crop: tuple[int, int, int, int], size: int) -> Camera:
    """Intrinsics at the dataset size of the source camera seen through crop (x, y, side, side)."""
    x0, y0, side, _ = crop
    scale = size / side
    return Camera(focal_px=source_focal_px(height) * scale, cx=(width / 2.0 - x0) * scale,
                  cy=(height / 2.0 - y0) * scale, model=CAMERA_MODEL)


def matrices_to_pose(matrices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Facial transformation matrices [T, 4, 4] -> euler_deg [T, 3] (roll, pitch, yaw; paper Eq. 1), trans [T, 3] cm.

    Uses the synthetic presenter's own conversion so tracked and true poses share one convention.
    """
    from engine.data.synth.presenter import matrix_to_euler

    euler = np.array([matrix_to_euler(m[:3, :3]) if np.isfinite(m).all() else np.full(3, np.nan) for m in matrices])
    return euler.reshape(-1, 3), np.asarray(matrices[:, :3, 3], np.float64).reshape(-1, 3)


def fill_gaps(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """[T, ...] with rows where valid [T] is False replaced by linear interpolation over time (ends held)."""
    flat = np.asarray(values, np.float64).reshape(len(values), -1).copy()
    have = np.flatnonzero(valid)
    missing = np.flatnonzero(~valid)
    if len(have) and len(missing):
        for column in range(flat.shape[1]):
            flat[missing, column] = np.interp(missing, have, flat[have, column])
    return flat.reshape(np.shape(values))


def smooth(values: np.ndarray, window: int, polyorder: int) -> np.ndarray:
    """Savitzky-Golay along time of [T, D]; the window shrinks (odd, > polyorder) for clips shorter than it."""
    from scipy.signal import savgol_filter

    frames = len(values)
    window = min(window, frames if frames % 2 else frames - 1)
    if window <= polyorder:
        return np.asarray(values, np.float64)
    return savgol_filter(values, window, polyorder, axis=0, mode="interp")


def unwrap_degrees(euler: np.ndarray) -> np.ndarray:
    """[T, 3] degrees made continuous over time (no jumps of 360 between frames)."""
    return np.rad2deg(np.unwrap(np.deg2rad(euler), axis=0))


def landmarks_to_dataset(landmarks: np.ndarray, width: int, height: int, crop: tuple[int, int, int, int],
                         size: int) -> np.ndarray:
    """Normalised landmarks [T, N, 3] of a width x height frame -> dataset pixels [T, N, 2] through the crop."""
    x0, y0, side, _ = crop
    scale = size / side
    x = (landmarks[..., 0] * width - x0) * scale
    y = (landmarks[..., 1] * height - y0) * scale
    return np.stack([x, y], axis=-1)


def dataset_tracks(raw, crop: tuple[int, int, int, int], size: int) -> Tracks:
    """RawTracks (T frames, some without a face) -> Tracks: pose from the matrices, gaps filled, SMOOTHING applied,
    landmarks in dataset pixels, valid = where a face was found."""
    valid = raw.detected
    euler, trans = matrices_to_pose(raw.matrices)
    euler[valid] = unwrap_degrees(euler[valid])  # before filling, so a gap never interpolates across a 360 jump
    window, order = SMOOTHING["pose"]["window"], SMOOTHING["pose"]["polyorder"]
    euler = smooth(fill_gaps(euler, valid), window, order)
    trans = smooth(fill_gaps(trans, valid), window, order)
    window, order = SMOOTHING["blendshapes"]["window"], SMOOTHING["blendshapes"]["polyorder"]
    filled = fill_gaps(raw.blendshapes, valid)
    blendshapes = smooth(filled, window, order)
    keep = [i for i, name in enumerate(raw.names) if name in SMOOTHING["blendshapes"]["unsmoothed"]]
    blendshapes[:, keep] = filled[:, keep]
    blendshapes = blendshapes.clip(0.0, 1.0)
    points = landmarks_to_dataset(fill_gaps(raw.landmarks, valid), raw.width, raw.height, crop, size)
    return Tracks(euler, trans, blendshapes, list(raw.names), points, valid.copy())
