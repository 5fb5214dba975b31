"""Raw tracking -> dataset tracks: the stated camera, Euler angles, gap filling and Savitzky-Golay smoothing.

The camera model is MediaPipe's own geometry camera, so the facial transformation matrix needs no refit: a pinhole
at the origin looking down -z (x right, y up, OpenGL), vertical field of view 63 degrees over the tracked frame's
height, principal point at the frame centre. Projecting the canonical mesh through the matrix and this camera lands
on the tracked landmarks (about 1-2 px at 256 px). Cropping and resizing only shift the principal point and scale
the focal length, so translations stay in the same metric camera frame (cm).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.data.dataset import Camera, Tracks
from engine.data.synth.presenter import matrix_to_euler

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


RIGID_LANDMARKS: tuple[int, ...] = (
    10, 151, 9, 8, 109, 338, 67, 297, 108, 337,  # forehead and glabella
    168, 6, 197, 195, 5, 4, 1, 48, 278, 115, 344, 45, 275, 51, 281, 3, 248, 196, 419, 122, 351,  # nose
    33, 263, 133, 362, 130, 359, 243, 463,  # eye corners
    127, 356, 162, 389, 21, 251, 54, 284, 139, 368, 34, 264, 143, 372, 234, 454,  # temples, sides of the face
    116, 345, 117, 346,  # cheekbones
)
"""MediaPipe face-mesh ids of points that a face's expressions move least (no lips, jaw, brows or lids): what
refine_poses fits a rigid head to. On real clips the forehead points still drift a little with brow raises and the
nose and side points with wide smiles (MediaPipe's landmarks there move about 1-4 px per unit blendshape at 256 px)."""


@dataclass
class PoseRefinement:
    """refine_poses' result. T frames, N = len(landmarks) rigid points.

    euler_deg [T, 3], trans [T, 3]   refined head pose, same conventions as Tracks (per frame, unsmoothed)
    template [N, 3]                  the person's rigid points in the canonical head frame (cm)
    report                           mean reprojection per frame (median, p90; px) of the template through the
                                     input and the refined poses, pose changes (deg, cm), rounds, seconds
    """

    euler_deg: np.ndarray
    trans: np.ndarray
    template: np.ndarray
    report: dict


def _euler_matrices(euler_deg: np.ndarray) -> np.ndarray:
    """[T, 3] (roll, pitch, yaw) -> [T, 3, 3] = Rz(roll) Ry(yaw) Rx(pitch) (engine.data.synth.presenter, batched)."""
    roll, pitch, yaw = np.deg2rad(np.asarray(euler_deg, np.float64)).T
    cr, sr, cp, sp, cy, sy = np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    one, zero = np.ones_like(roll), np.zeros_like(roll)
    rz = np.stack([cr, -sr, zero, sr, cr, zero, zero, zero, one], -1).reshape(-1, 3, 3)
    ry = np.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(-1, 3, 3)
    rx = np.stack([one, zero, zero, zero, cp, -sp, zero, sp, cp], -1).reshape(-1, 3, 3)
    return rz @ ry @ rx


def _matrices_euler(rotations: np.ndarray) -> np.ndarray:
    """[T, 3, 3] -> [T, 3] (roll, pitch, yaw) degrees by the paper's Eq. 1 (presenter.matrix_to_euler, batched)."""
    r = rotations
    roll = np.arctan2(r[:, 1, 0], r[:, 0, 0])
    pitch = np.arctan2(r[:, 2, 1], r[:, 2, 2])
    yaw = np.arctan2(-r[:, 2, 0], np.hypot(r[:, 2, 1], r[:, 2, 2]))
    return np.rad2deg(np.stack([roll, pitch, yaw], -1))


def _skew(v: np.ndarray) -> np.ndarray:
    """[..., 3] -> [..., 3, 3] cross-product matrices."""
    out = np.zeros(v.shape + (3,))
    out[..., 0, 1], out[..., 0, 2], out[..., 1, 2] = -v[..., 2], v[..., 1], -v[..., 0]
    return out - np.swapaxes(out, -1, -2)


def _rotation_vectors(w: np.ndarray) -> np.ndarray:
    """Axis-angle [T, 3] -> rotation matrices [T, 3, 3] (Rodrigues)."""
    angle = np.linalg.norm(w, axis=-1)[:, None, None]
    k = _skew(w / np.maximum(angle[:, 0], 1e-12))
    return np.eye(3) + np.sin(angle) * k + (1.0 - np.cos(angle)) * k @ k


def _project(points: np.ndarray, camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """Camera-frame points [..., 3] (looking down -z, y up) -> pixels [..., 2] (y down) and d(pixels)/d(points)."""
    depth = np.maximum(-points[..., 2], 1e-3)
    f = camera.focal_px
    pixels = np.stack([camera.cx + f * points[..., 0] / depth, camera.cy - f * points[..., 1] / depth], -1)
    jacobian = np.zeros(points.shape[:-1] + (2, 3))
    jacobian[..., 0, 0] = f / depth
    jacobian[..., 0, 2] = f * points[..., 0] / depth ** 2
    jacobian[..., 1, 1] = -f / depth
    jacobian[..., 1, 2] = -f * points[..., 1] / depth ** 2
    return pixels, jacobian


def _huber_weights(residuals: np.ndarray, delta: float) -> np.ndarray:
    """IRLS weights [...] of 2D residuals [..., 2] for a Huber loss on their length (pixels)."""
    length = np.linalg.norm(residuals, axis=-1)
    return np.where(length <= delta, 1.0, delta / np.maximum(length, 1e-12))


def _fit_poses(points2d, template, camera, rotations, trans, iterations, delta):
    """Per-frame 6-DoF Gauss-Newton (robust, all frames at once): points2d [T, N, 2], template [N, 3]."""
    rotations, trans = rotations.copy(), trans.copy()
    for _ in range(iterations):
        rotated = np.einsum("tij,nj->tni", rotations, template)
        pixels, dproj = _project(rotated + trans[:, None], camera)
        residual = pixels - points2d
        weight = _huber_weights(residual, delta)
        jacobian = np.concatenate([dproj @ -_skew(rotated), dproj], -1)  # [T, N, 2, 6]: d/d(left rotation, trans)
        normal = np.einsum("tn,tnki,tnkj->tij", weight, jacobian, jacobian) + 1e-6 * np.eye(6)
        gradient = np.einsum("tn,tnki,tnk->ti", weight, jacobian, residual)
        step = -np.linalg.solve(normal, gradient[..., None])[..., 0]
        rotations = _rotation_vectors(step[:, :3]) @ rotations
        trans = trans + step[:, 3:]
    return rotations, trans


def _fit_template(points2d, template, camera, rotations, trans, reference, prior, iterations, delta):
    """Each rigid point's canonical position given the poses (robust Gauss-Newton), pulled weakly to reference."""
    template = template.copy()
    for _ in range(iterations):
        pixels, dproj = _project(np.einsum("tij,nj->tni", rotations, template) + trans[:, None], camera)
        residual = pixels - points2d
        weight = _huber_weights(residual, delta)
        jacobian = dproj @ rotations[:, None]  # [T, N, 2, 3]
        normal = np.einsum("tn,tnki,tnkj->nij", weight, jacobian, jacobian)
        gradient = np.einsum("tn,tnki,tnk->ni", weight, jacobian, residual)
        strength = prior * np.trace(normal, axis1=1, axis2=2).mean() / 3.0
        normal = normal + (strength + 1e-9) * np.eye(3)
        gradient = gradient + strength * (template - reference)
        template = template - np.linalg.solve(normal, gradient[..., None])[..., 0]
    return template


def _similarity(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(s, Q, c) minimising |s Q source + c - target|^2 over rows (Umeyama, proper rotation)."""
    source_mean, target_mean = source.mean(0), target.mean(0)
    a, b = source - source_mean, target - target_mean
    u, sigma, vt = np.linalg.svd(b.T @ a)
    signs = np.array([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = (u * signs) @ vt
    scale = float((sigma * signs).sum() / (a ** 2).sum())
    return scale, rotation, target_mean - scale * rotation @ source_mean


def _reprojection_px(points2d, template, camera, rotations, trans) -> np.ndarray:
    """Mean reprojection error per frame [T] in pixels."""
    pixels, _ = _project(np.einsum("tij,nj->tni", rotations, template) + trans[:, None], camera)
    return np.linalg.norm(pixels - points2d, axis=-1).mean(-1)


def refine_poses(landmarks2d: np.ndarray, camera: Camera, euler_deg: np.ndarray, trans: np.ndarray,
                 valid: np.ndarray, reference: np.ndarray | None = None,
                 landmarks: tuple[int, ...] = RIGID_LANDMARKS, rounds: int = 5, huber_px: float = 2.0,
                 prior: float = 0.01) -> PoseRefinement:
    """Head poses that agree with the 2D landmarks through one rigid, person-specific head (bundle adjustment).

    MediaPipe's facial transformation matrix fits its average canonical face to all 468 of its landmarks, lips and
    jaw included, so a different face shape and the person's expressions shift and turn the pose from frame to frame.
    This fits only the rigid points `landmarks` of the person's own face: starting from the given pose and the
    canonical mesh's points (or `reference` [N, 3], cm, canonical head frame), it alternates `rounds` times

      1. per-frame 6-DoF pose: robust (Huber at `huber_px`) Gauss-Newton on the reprojection through `camera`;
      2. the template: each point's canonical position given all poses, pulled towards `reference` with weight
         `prior` (relative to one average frame's information times T, so 0.01 is weak), then moved back onto
         `reference` by a similarity transform (the gauge: monocular data fixes neither the head's orientation in
         its own frame nor its size; this keeps both those of the canonical mesh, as MediaPipe's pose has them; the
         poses change with it so that nothing projects differently).

    landmarks2d [T, 478, 2] dataset pixels; euler_deg [T, 3] (roll, pitch, yaw) and trans [T, 3] cm, the starting
    pose in Tracks' conventions; valid [T] frames with a face (others are interpolated from their neighbours).
    Returns per-frame (unsmoothed) poses in the same conventions, the template and a report. Landmarks carry about
    as much frame-to-frame noise as MediaPipe's raw matrices, so smooth the result as dataset_tracks smooths those.
    Cost: about 2 s for 1337 frames on one CPU core (numpy, no iteration over frames).

    Measured on two real webcam clips (256 px): mean reprojection of the rigid points 0.56-0.70 px through the stored
    pose (with the person's template fitted to it) vs 0.28-0.33 px refined; poses differ by a constant pitch of
    2.5-3 degrees (the gauge) and by 1-1.7 degrees (std) in pitch and yaw and 0.4 cm in depth per frame.
    """
    import time

    started = time.perf_counter()
    valid = np.asarray(valid, bool)
    ids = np.asarray(landmarks)
    if reference is None:
        from engine.data.face_model import load_canonical_mesh

        reference = load_canonical_mesh().vertices[ids]
    reference = np.asarray(reference, np.float64)
    if reference.shape != (len(ids), 3):
        raise ValueError(f"refine_poses: reference has shape {reference.shape}, need ({len(ids)}, 3), one row per "
                         "rigid landmark")
    if valid.sum() < 2:
        raise ValueError(f"refine_poses: {int(valid.sum())} frames with a face; need at least 2")
    points2d = np.asarray(landmarks2d, np.float64)[valid][:, ids]
    start_rotations = _euler_matrices(np.asarray(euler_deg)[valid])
    start_trans = np.asarray(trans, np.float64)[valid]
    rotations, moved = _fit_poses(points2d, reference, camera, start_rotations, start_trans, 8, huber_px)
    template = reference.copy()
    for _ in range(rounds):
        template = _fit_template(points2d, template, camera, rotations, moved, reference, prior, 3, huber_px)
        scale, turn, shift = _similarity(template, reference)
        template = scale * template @ turn.T + shift
        rotations = rotations @ turn.T
        moved = scale * moved - np.einsum("tij,j->ti", rotations, shift)
        rotations, moved = _fit_poses(points2d, template, camera, rotations, moved, 5, huber_px)
    before = _reprojection_px(points2d, template, camera, start_rotations, start_trans)
    after = _reprojection_px(points2d, template, camera, rotations, moved)
    relative = np.swapaxes(start_rotations, 1, 2) @ rotations
    angle = np.rad2deg(np.arccos(np.clip((np.trace(relative, axis1=1, axis2=2) - 1.0) / 2.0, -1.0, 1.0)))
    shift_cm = np.linalg.norm(moved - start_trans, axis=1)
    euler = np.full((len(valid), 3), np.nan)
    euler[valid] = unwrap_degrees(_matrices_euler(rotations))
    out_trans = np.full((len(valid), 3), np.nan)
    out_trans[valid] = moved
    report = {
        "frames": int(valid.sum()), "points": len(ids), "rounds": rounds,
        "reprojection_px_input": {"median": float(np.median(before)), "p90": float(np.percentile(before, 90))},
        "reprojection_px_refined": {"median": float(np.median(after)), "p90": float(np.percentile(after, 90))},
        "rotation_change_deg": {"median": float(np.median(angle)), "p90": float(np.percentile(angle, 90))},
        "trans_change_cm": {"median": float(np.median(shift_cm)), "p90": float(np.percentile(shift_cm, 90))},
        "template_vs_reference_rms_cm": float(np.sqrt(((template - reference) ** 2).sum(1).mean())),
        "seconds": time.perf_counter() - started,
    }
    return PoseRefinement(fill_gaps(euler, valid), fill_gaps(out_trans, valid), template, report)
