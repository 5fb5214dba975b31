"""The blink gain: chosen from the rendered eye aspect ratios, measured on a real render by MediaPipe, kept in the
motion model by `syncanim train`, and 1 (with a warning) where no face shows."""
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.cli import main
from engine.data.dataset import Tracks
from engine.eval import blink_gain
from engine.eval.blink_gain import GAINS, SHUT_RATIO, choose_gain, pose_frames, shut_ratios
from engine.eval.metrics import LEFT_EYE, RIGHT_EYE, eye_aspect_ratio
from engine.io.checkpoint import read_metadata

BUNDLED = Path(__file__).resolve().parents[2] / "assets" / "avatar"


def test_the_smallest_gain_that_shuts_the_eye_is_chosen():
    assert choose_gain((0.66, 0.60, 0.49, 0.47, 0.43)) == 1.2
    assert choose_gain((0.30, 0.28, 0.27, 0.26, 0.25)) == 1.0  # shut already: no gain
    assert choose_gain((0.72, 0.69, 0.68, 0.63, 0.59)) == 1.4  # never shut: the deepest
    assert choose_gain((0.72, 0.61, 0.66, None, float("nan"))) == 1.1
    assert choose_gain((None,) * len(GAINS)) == 1.0  # no face in any render
    assert choose_gain((SHUT_RATIO, 0.4, 0.3, 0.2, 0.1)) == 1.0


def test_a_blink_that_will_not_show_even_at_the_largest_gain_is_named(caplog):
    def logged(ratios) -> str:
        caplog.clear()
        with caplog.at_level(logging.INFO):
            blink_gain.log_blink_gain(blink_gain.BlinkGain(choose_gain(ratios), GAINS, ratios, (3, 0, 5)),
                                      Path("av"), Path("data"))
        return caplog.text

    shallow = logged((0.80, 0.78, 0.76, 0.755, 0.75))  # a training measured so: none of 19 blinks a minute seen
    assert "blink gain 1.4" in shallow and "0.75 of the open eye" in shallow and "another --seed" in shallow
    assert str(Path("av") / "val" / "blinks.png") in shallow
    deep_enough = logged((0.72, 0.69, 0.68, 0.63, 0.59))
    assert "blink gain 1.4" in deep_enough and "x1.3: 0.63" in deep_enough and "another --seed" not in deep_enough
    assert "found no face" in logged((None,) * len(GAINS))


def _eyes(ear: float, width: float = 30.0) -> np.ndarray:
    """Landmarks [478, 2] whose eyes both have eye aspect ratio `ear` (p2, p3 above and p6, p5 below the corners)."""
    points = np.zeros((478, 2))
    half = ear * width / 2.0
    for eye, x0 in ((RIGHT_EYE, 60.0), (LEFT_EYE, 120.0)):
        p1, p2, p3, p4, p5, p6 = eye
        points[[p1, p4]] = [[x0, 100.0], [x0 + width, 100.0]]
        points[[p2, p3]] = [[x0 + 10, 100.0 - half], [x0 + 20, 100.0 - half]]
        points[[p6, p5]] = [[x0 + 10, 100.0 + half], [x0 + 20, 100.0 + half]]
    return points


def test_the_eyes_figure_is_drawn_into_an_avatar_copied_without_its_val_folder(tmp_path):
    from engine.eval.plots import plot_blink_gain

    crops = [np.full((1 + len(GAINS), 12, 20, 3), 128, np.uint8) for _ in range(2)]
    result = blink_gain.BlinkGain(1.2, GAINS, tuple(0.5 for _ in GAINS), (3, 7))
    figure = plot_blink_gain(tmp_path / "avatar" / "val" / "blinks.png", crops, result)
    assert figure.is_file() and figure.stat().st_size > 1000
    assert [p.name for p in figure.parent.iterdir()] == ["blinks.png"]  # no partial file left beside it


def test_shut_ratios_compare_each_pose_with_its_own_open_eye():
    assert np.isclose(eye_aspect_ratio(_eyes(0.3)), 0.3)
    open_ears, shut = (0.30, 0.20, 0.40), ((0.15, 0.08, 0.20), (0.12, 0.20, 0.12), (None, None, None))
    rows = [[_eyes(e) for e in open_ears]]
    rows += [[np.full((478, 2), np.nan) if e is None else _eyes(e) for e in row] for row in shut]
    ratios = shut_ratios(np.asarray(rows))
    assert np.isclose(ratios[0], 0.5) and np.isclose(ratios[1], 0.4) and ratios[2] is None
    rows[1][1] = np.full((478, 2), np.nan)  # no face in one render: the median of the others
    assert np.isclose(shut_ratios(np.asarray(rows))[0], 0.5)


def _tracks(blink: np.ndarray, valid: np.ndarray) -> Tracks:
    frames = len(blink)
    names = ["eyeBlinkLeft", "eyeBlinkRight", "jawOpen"]
    shapes = np.stack([blink, blink, np.zeros(frames)], 1).astype(np.float32)
    return Tracks(np.zeros((frames, 3), np.float32), np.zeros((frames, 3), np.float32), shapes, names,
                  np.zeros((frames, 478, 2), np.float32), valid)


def test_the_deepest_tracked_blink_of_the_training_frames_is_rendered_first():
    blink = np.full(100, 0.1)
    blink[[30, 50, 95]] = [0.7, 0.9, 1.0]  # 95 is a validation frame, 50 an untracked one
    valid = np.ones(100, bool)
    valid[50] = False
    frames = pose_frames(_tracks(blink, valid), val_start=90, count=4)
    assert frames[0] == 30 and len(frames) == 4 and frames.max() < 90 and 50 not in frames


@pytest.mark.slow
def test_the_bundled_avatar_renders_its_blink_shut_as_mediapipe_reads_it(tmp_path):
    """The real path on the bundled avatar (the synthetic presenter's NeRF): its renders at three head turns,
    tracked by MediaPipe. Its training closes the eye fully, so no gain is needed."""
    from engine.nerf.kernels.runtime import init_taichi
    from engine.nerf.render import AvatarRenderer

    init_taichi("cpu")
    meta = read_metadata(BUNDLED / "motion.safetensors")
    reference, names = meta["reference"], meta["blendshape_names"]
    euler = np.tile(reference["euler_deg"], (3, 1))
    euler[:, 2] += (-8.0, 0.0, 8.0)
    tracks = Tracks(euler.astype(np.float32), np.tile(reference["trans"], (3, 1)).astype(np.float32),
                    np.tile(reference["blendshapes"], (3, 1)).astype(np.float32), names,
                    np.zeros((3, 478, 2), np.float32), np.ones(3, bool))
    eyelids = blink_gain.eyelid_rows(tracks, 3, np.asarray(meta["blink"]["peak"]))
    figure = tmp_path / "blinks.png"
    result = blink_gain.measure_blink_gain(AvatarRenderer.load(BUNDLED), tracks, np.arange(3), eyelids, 128, 25.0,
                                           figure)
    assert all(r is not None and r < SHUT_RATIO for r in result.shut_ratio), result
    assert result.gain == 1.0 and result.frames == (0, 1, 2) and figure.stat().st_size > 10_000


@pytest.mark.slow
def test_train_measures_the_gain_into_the_motion_model(tiny_avatar, tiny_data, tmp_path, caplog):
    """`syncanim train --stage blinks` on an avatar trained before the gain: its 32-pixel renders show MediaPipe no
    face, so the gain stays 1, said so; the motion model keeps what was measured and still loads."""
    from engine.motion.runtime import MotionRuntime

    avatar = tmp_path / "avatar"
    shutil.copytree(tiny_avatar, avatar)
    with caplog.at_level(logging.WARNING):
        assert main(["train", str(tiny_data), "-o", str(avatar), "--stage", "blinks"]) == 0
    assert "found no face" in caplog.text and str(avatar) in caplog.text
    blink = read_metadata(avatar / "motion.safetensors")["blink"]
    assert blink["gain"] == 1.0 and blink["gain_check"]["shut_ratio"] == [None] * len(GAINS)
    json.dumps(blink)
    runtime = MotionRuntime.load(avatar)
    assert np.allclose(runtime.blink_peak, np.minimum(np.asarray(blink["peak"]), 1.0))


def test_the_blink_gain_needs_both_parts(tmp_path, tiny_data, capsys):
    avatar = tmp_path / "avatar"
    avatar.mkdir()
    assert main(["train", str(tiny_data), "-o", str(avatar), "--stage", "blinks"]) == 2
    err = capsys.readouterr().err
    assert "motion.safetensors is missing" in err and "syncanim train" in err
