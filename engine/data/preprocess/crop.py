"""The one fixed square crop of a video: the head at every pose, then as much upper body as the frame holds."""
from __future__ import annotations

import numpy as np

# Margins around the landmark box that make it a head box, in face heights/widths: MediaPipe's mesh stops at the
# upper forehead and the cheeks, while hair, skull and ears reach further.
HEAD_ABOVE = 0.6
HEAD_SIDES = 0.35
HEAD_BELOW = 0.1
TOP_MARGIN = 0.04
"""Space left above the highest head position, as a fraction of the crop side."""


def head_box(points: np.ndarray) -> np.ndarray:
    """Landmarks [T, N, 2] source pixels (finite rows only) -> per-frame head boxes [T, 4] (x0, y0, x1, y1)."""
    low, high = points.min(axis=1), points.max(axis=1)
    face_w, face_h = (high - low).T
    return np.stack([low[:, 0] - HEAD_SIDES * face_w, low[:, 1] - HEAD_ABOVE * face_h,
                     high[:, 0] + HEAD_SIDES * face_w, high[:, 1] + HEAD_BELOW * face_h], axis=1)


def choose_crop(points: np.ndarray, width: int, height: int,
                crop_faces: float) -> tuple[tuple[int, int, int, int], bool]:
    """One crop (x, y, side, side) in source pixels for all frames, and whether the head fits in it at every pose.

    points [T, N, 2]: landmarks of the frames with a face, source pixels. The side is crop_faces face heights
    (median over frames), at least the union of the head boxes, at most the frame's shorter side; the crop is
    centred on the head horizontally and puts the head near its top, so the rest of it shows the body below.
    """
    boxes = head_box(points)
    union = np.array([boxes[:, 0].min(), boxes[:, 1].min(), boxes[:, 2].max(), boxes[:, 3].max()])
    face_h = float(np.median(points[:, :, 1].max(axis=1) - points[:, :, 1].min(axis=1)))
    need = max(union[2] - union[0], union[3] - union[1])
    side = int(round(min(width, height, max(need * 1.05, crop_faces * face_h))))
    centre_x = (union[0] + union[2]) / 2.0
    x0 = int(round(np.clip(centre_x - side / 2.0, 0, width - side)))
    y0 = int(round(np.clip(union[1] - TOP_MARGIN * side, 0, height - side)))
    fits = bool(union[0] >= x0 - 1 and union[2] <= x0 + side + 1 and union[1] >= y0 - 1 and union[3] <= y0 + side + 1)
    return (x0, y0, side, side), fits


def crop_frame(frame: np.ndarray, crop: tuple[int, int, int, int], size: int) -> np.ndarray:
    """RGB [H, W, 3] uint8 -> the crop resized to [size, size, 3] (area averaging when shrinking)."""
    import cv2

    x0, y0, side, _ = crop
    window = np.ascontiguousarray(frame[y0:y0 + side, x0:x0 + side])
    if side == size:
        return window
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    return cv2.resize(window, (size, size), interpolation=interpolation)
