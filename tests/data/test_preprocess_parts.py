"""Preprocess parts on small made-up inputs: resampling clock, rotation, crop, gaps, masks, plate, mask file, ledger."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.data.dataset import FrameWriter, Masks
from engine.data.preprocess import background, masks, pose
from engine.data.preprocess.config import PreprocessError, PreprocessOptions, validate
from engine.data.preprocess.crop import choose_crop, crop_frame
from engine.data.preprocess.decode import inspect_source, resampled_frames
from engine.data.preprocess.maskfile import MaskFileWriter, read_mask_frames
from engine.data.preprocess.steps import Ledger, file_fingerprint, step_key
from engine.io.video import ffmpeg_exe

SIDE = 96


def numbered_video(path: Path, fps: int, count: int, step: int = 2) -> Path:
    """Lossless frames whose grey level is step * index, so a decoded frame says which source frame it was."""
    writer = FrameWriter(path, fps)
    for index in range(count):
        writer.write(np.full((SIDE, SIDE, 3), step * index, np.uint8))
    writer.close()
    return path


def source_indices(path: Path, fps: float = 25.0, step: int = 2) -> list[int]:
    return [int(round(frame.mean() / step)) for _, frame in resampled_frames(inspect_source(path), fps)]


@pytest.mark.parametrize("source_fps", [24, 25, 30, 50])
def test_resampling_picks_the_source_frame_nearest_each_output_time(tmp_path, source_fps):
    count = 2 * source_fps  # two seconds
    picked = source_indices(numbered_video(tmp_path / "n.mkv", source_fps, count))
    assert len(picked) == 50, "two seconds must give 50 frames at 25 fps whatever the source rate"
    for k, j in enumerate(picked):
        # nearest in time: |j / source_fps - k / 25| is at most half a source frame
        assert abs(j / source_fps - k / 25.0) <= 0.5 / source_fps + 1e-9, (k, j)


def test_a_stream_without_timestamps_uses_its_declared_rate(tmp_path):
    numbered = numbered_video(tmp_path / "n.mkv", 25, 50, step=5)  # wide steps survive the RGB -> YUV round trip
    raw = tmp_path / "raw.h264"  # an elementary stream: frames carry no presentation times
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-y", "-i", str(numbered), "-c:v", "libx264", "-crf", "0",
                    "-pix_fmt", "yuv444p", "-f", "h264", str(raw)], check=True)
    assert source_indices(raw, step=5) == list(range(50))


def test_rotated_phone_video_is_turned_upright(tmp_path):
    picture = np.zeros((SIDE, 2 * SIDE, 3), np.uint8)
    picture[:, :SIDE] = 200  # bright left half when shown unrotated
    writer = FrameWriter(tmp_path / "flat.mkv", 25)
    for _ in range(5):
        writer.write(picture)
    writer.close()
    flat, rotated = tmp_path / "flat.mp4", tmp_path / "rotated.mp4"
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-y", "-i", str(tmp_path / "flat.mkv"), "-c:v", "libx264",
                    "-pix_fmt", "yuv444p", str(flat)], check=True)
    # stream copy keeps the pixels as stored and only adds the display matrix, as phones do
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-y", "-display_rotation", "90", "-i", str(flat), "-c", "copy",
                    str(rotated)], check=True)
    info = inspect_source(rotated)
    assert (info.rotation, info.width, info.height) == (90, SIDE, 2 * SIDE)
    _, frame = next(resampled_frames(info, 25.0))
    assert frame.shape == (2 * SIDE, SIDE, 3)
    # a 90 degree counter-clockwise turn puts the bright left half at the bottom
    assert frame[-SIDE // 2:].mean() > 150 > 50 > frame[:SIDE // 2].mean()


def face_points(centre_x: float, top_y: float, face_h: float, frames: int = 3) -> np.ndarray:
    """A stand-in landmark cloud [T, 10, 2]: a face box of height face_h, width 0.8 face_h."""
    xs = centre_x + np.linspace(-0.4, 0.4, 10) * face_h
    ys = top_y + np.linspace(0, 1, 10) * face_h
    return np.repeat(np.stack([xs, ys], axis=1)[None], frames, axis=0)


def test_crop_is_square_keeps_the_head_and_shows_the_body_below():
    points = face_points(960, 300, 150)
    (x0, y0, side, side2), fits = choose_crop(points, 1920, 1080, crop_faces=5.0)
    assert side == side2 == 750 and fits  # five face heights, less than the frame's height
    assert x0 <= 960 - 0.75 * 150 and x0 + side >= 960 + 0.75 * 150
    assert y0 < 300 - 0.6 * 150 and y0 + side <= 1080
    assert y0 + side - (300 + 150) > 2.5 * 150, "most of the crop lies below the face"


def test_crop_never_leaves_the_frame_and_reports_a_head_that_does():
    (x0, y0, side, _), fits = choose_crop(face_points(40, 10, 150), 1280, 720, crop_faces=5.0)
    assert (x0, y0) == (0, 0) and side == 720 and not fits  # hair above the top edge cannot be kept
    (x0, y0, side, _), fits = choose_crop(face_points(360, 400, 120), 720, 1280, crop_faces=8.0)
    assert side == 720 and x0 == 0 and 0 <= y0 <= 1280 - 720 and fits


def test_crop_grows_past_crop_faces_when_the_head_moves_a_lot():
    points = np.concatenate([face_points(400, 300, 100, 1), face_points(900, 300, 100, 1)])
    (x0, _, side, _), fits = choose_crop(points, 1920, 1080, crop_faces=2.0)
    assert side > 2.0 * 100 and fits and x0 <= 400 - 0.75 * 100


def test_crop_frame_resizes_the_window():
    frame = np.zeros((300, 400, 3), np.uint8)
    frame[100:200, 150:250] = 255
    out = crop_frame(frame, (150, 100, 100, 100), 64)
    assert out.shape == (64, 64, 3) and out.min() == 255


def test_fill_gaps_interpolates_and_holds_the_ends():
    values = np.array([[np.nan], [1.0], [np.nan], [3.0], [np.nan]])
    valid = np.isfinite(values[:, 0])
    assert pose.fill_gaps(values, valid)[:, 0].tolist() == [1.0, 1.0, 2.0, 3.0, 3.0]


def test_smoothing_keeps_lines_and_handles_short_clips():
    line = np.arange(20, dtype=float)[:, None] * [1.0, -2.0]
    assert np.allclose(pose.smooth(line, 5, 3), line)
    assert pose.smooth(np.ones((3, 2)), 5, 3).shape == (3, 2)
    assert pose.smooth(np.ones((2, 2)), 5, 3).shape == (2, 2)


def test_unwrap_removes_360_jumps():
    euler = np.array([[179.0, 0, 0], [-179.0, 0, 0]])
    assert pose.unwrap_degrees(euler)[1, 0] == pytest.approx(181.0)


def test_camera_follows_the_crop():
    camera = pose.crop_camera(1920, 1080, (460, 40, 1000, 1000), 500)
    assert camera.focal_px == pytest.approx(pose.source_focal_px(1080) / 2)
    assert (camera.cx, camera.cy) == (pytest.approx(250.0), pytest.approx(250.0))


def frontal_landmarks(size: int = 128) -> np.ndarray:
    """MediaPipe's canonical face seen from the front, [478, 2] pixels (irises at the eye centres)."""
    from engine.data.face_model import load_canonical_mesh

    vertices = load_canonical_mesh().vertices
    scale = size * 0.35 / np.ptp(vertices[:, 1])
    points = np.stack([size / 2 + vertices[:, 0] * scale, size * 0.4 - vertices[:, 1] * scale], axis=1)
    return np.concatenate([points, np.repeat(points[[468 - 1]], 10, axis=0)])


def test_head_and_torso_split_at_the_jaw():
    size = 128
    points = frontal_landmarks(size)
    person = np.ones((size, size), bool)
    head, torso = masks.split_person(person, points, masks.face_oval_ids())
    assert not np.any((head > 0) & (torso > 0)) and np.all((head > 0) | (torso > 0))
    nose = np.round(points[1]).astype(int)
    chin = points[masks.CHIN]
    face_h = np.linalg.norm(points[masks.FOREHEAD] - chin)
    assert head[nose[1], nose[0]] == 255
    below = np.round(chin + [0, 0.3 * face_h]).astype(int)
    assert torso[below[1], below[0]] == 255, "the neck under the chin is torso"
    above = np.round(points[masks.FOREHEAD] - [0, 0.2 * face_h]).astype(int)
    assert head[above[1], above[0]] == 255, "hair above the forehead is head"
    assert head[2, size // 2] == 255 and torso[size - 2, 2] == 255


def test_a_seen_face_outside_the_person_mask_still_counts_as_head():
    points = frontal_landmarks()
    head, torso = masks.split_person(np.zeros((128, 128), bool), points, masks.face_oval_ids())
    nose = np.round(points[1]).astype(int)
    assert head[nose[1], nose[0]] == 255 and not torso.any()
    head, torso = masks.split_person(np.zeros((128, 128), bool), points, masks.face_oval_ids(), face_seen=False)
    assert not head.any() and not torso.any(), "an interpolated face must not paint a head where nobody is"


def test_lip_rect_is_a_square_around_the_lips_and_face_rect_holds_all_points():
    points = frontal_landmarks()
    x0, y0, x1, y1 = masks.lip_rect(points, 128)
    lips = points[list(masks.LIPS_OUTER)]
    assert x1 - x0 == pytest.approx(y1 - y0, abs=1)
    assert x0 <= lips[:, 0].min() and lips[:, 0].max() <= x1 and y0 <= lips[:, 1].min() and lips[:, 1].max() <= y1
    fx0, fy0, fx1, fy1 = masks.face_rect(points, 128)
    assert fx0 <= points[:, 0].min() and points[:, 0].max() <= fx1 and fy0 <= points[:, 1].min()


def test_upper_face_rect_holds_brows_and_eyes_above_the_lips_per_frame():
    points = frontal_landmarks()
    x0, y0, x1, y1 = masks.upper_face_rect(points, 128)
    upper = points[list(masks.UPPER_FACE)]
    assert x0 < upper[:, 0].min() and upper[:, 0].max() < x1 and y0 < upper[:, 1].min() and upper[:, 1].max() < y1
    assert y1 <= masks.lip_rect(points, 128)[1], "the box stops above the mouth"
    moved = np.stack([points, points + (5.0, -3.0), points + 200.0])
    boxes = masks.upper_face_rect(moved, 128)
    np.testing.assert_array_equal(boxes[1], (x0 + 5, y0 - 3, x1 + 5, y1 - 3))
    np.testing.assert_array_equal(boxes[2], (128, 128, 128, 128))  # off the frame: clipped, empty


def test_background_plate_removes_a_moving_person_and_fills_a_static_one():
    rng = np.random.default_rng(0)
    scene = rng.integers(0, 255, (32, 32, 3), np.uint8)
    frames = np.repeat(scene[None], 8, axis=0)
    person = np.zeros((8, 32, 32), bool)
    for k in range(8):
        person[k, :, 4 * k:4 * k + 6] = True
        frames[k][person[k]] = 255
    plate, holes = background.background_plate(frames, person)
    assert holes == 0.0 and np.array_equal(plate, scene)
    person[:, 10:20, 10:20] = True
    plate, holes = background.background_plate(frames, person)
    assert holes == pytest.approx(100 / 1024) and plate.shape == (32, 32, 3)
    assert np.array_equal(plate[:5], scene[:5])


def test_plate_residual_is_zero_for_a_still_scene_and_grows_when_the_light_changes():
    scene = np.random.default_rng(0).integers(20, 200, (32, 32, 3), np.uint8)
    frames = np.repeat(scene[None], 8, axis=0)
    person = np.zeros((8, 32, 32), bool)
    person[:, 8:24, 8:24] = True
    frames[person] = 255  # the person is never compared
    plate, _ = background.background_plate(frames, person)
    assert background.plate_residual(frames, person, plate) == 0.0
    frames = np.stack([np.clip(scene.astype(int) + 10 * (k - 4), 0, 255) for k in range(8)]).astype(np.uint8)
    plate, _ = background.background_plate(frames, person)
    assert 15.0 < background.plate_residual(frames, person, plate) < 30.0  # mean |10 * (k - 4)| = 20


def test_mask_file_round_trips_and_streams(tmp_path):
    rng = np.random.default_rng(1)
    frames, size = 5, 16
    data = {name: rng.integers(0, 2, (frames, size, size)).astype(np.uint8) * 255 for name in ("p", "h", "t")}
    rects = rng.integers(0, size, (frames, 2, 4)).astype(np.int32)
    writer = MaskFileWriter(tmp_path / "masks.npz", frames, size, tmp_path / "scratch")
    for k in range(frames):
        hand = data["h"][k] if k == 2 else None  # no hand found: none
        writer.write(k, data["p"][k], data["h"][k], data["t"][k], rects[k, 0], rects[k, 1], hand=hand)
    writer.close()
    loaded = Masks.load(tmp_path / "masks.npz")
    assert np.array_equal(loaded.person, data["p"]) and np.array_equal(loaded.torso, data["t"])
    assert np.array_equal(loaded.hand[2], data["h"][2]) and not loaded.hand[[0, 1, 3, 4]].any()
    assert np.array_equal(loaded.lip_rect, rects[:, 1])
    assert not (tmp_path / "scratch").exists()
    some = read_mask_frames(tmp_path / "masks.npz", "head", [1, 3])
    assert sorted(some) == [1, 3] and np.array_equal(some[3], data["h"][3])


def test_a_hand_mask_covers_the_hand_a_finger_wide_and_its_forearm_within_the_person():
    from engine.data.preprocess.hands import FINGER_REACH, MIDDLE_KNUCKLE, WRIST, hand_mask

    # an upright hand: the wrist at (50, 60), the knuckles 20 px above it, fingers up to y = 15
    fingers = [(x, y) for x in (42, 47, 53, 58) for y in (40, 30, 22, 15)]
    hand = np.array([(50, 60), *[(44 + k, 55 - 3 * k) for k in range(4)], *fingers], np.float64)
    assert hand.shape == (21, 2) and np.linalg.norm(hand[MIDDLE_KNUCKLE] - hand[WRIST]) == pytest.approx(20, abs=1)
    person = np.zeros((130, 100), bool)
    person[:, 45:] = True  # the forearm's left half is outside the person
    mask = hand_mask([hand], person)
    assert mask[30, 50] and mask[15, 42]  # inside the landmarks' hull
    reach = FINGER_REACH * 20
    assert mask[30, int(42 - 0.8 * reach)] and not mask[30, int(42 - 1.5 * reach)]  # a finger's width beside it
    assert mask[85, 52] and not mask[85, 40]  # the forearm below the wrist, within the person only
    assert mask[95, 55] and not mask[120, 57]  # it ends two palms (and its rounded end) below the wrist
    assert not hand_mask([], person).any()


def test_a_hand_whose_wrist_lies_on_the_face_is_no_hand():
    """MediaPipe's landmarker now and then finds a 'hand' in a cheek and an eye (cap12 at 256 px, frames 182-224);
    a real hand's wrist joins an arm, off the face. The landmarker's answers are given here as it gives them."""
    from types import SimpleNamespace

    from engine.data.preprocess.hands import HandTracker

    def hand_at(wrist_x: float, wrist_y: float) -> list:
        points = [(wrist_x, wrist_y)] + [(wrist_x + 0.01 * k, wrist_y - 0.02 * k) for k in range(1, 21)]
        return [SimpleNamespace(x=x, y=y) for x, y in points]

    times = []
    landmarker = SimpleNamespace(detect_for_video=lambda image, ms: times.append(ms) or SimpleNamespace(
        hand_landmarks=[hand_at(0.40, 0.50), hand_at(0.80, 0.90)]))
    face = np.array([(30, 20), (70, 20), (70, 70), (30, 70)], np.float64)  # the face's outline, pixels of 100 x 100
    picture = np.zeros((100, 100, 3), np.uint8)
    tracker = HandTracker(landmarker, fps=25.0)
    assert len(tracker.find(picture)) == 2
    kept = tracker.find(picture, face)
    assert len(kept) == 1 and np.allclose(kept[0][0], (80, 90))
    assert times == [0, 40]  # the frames of one video, in order


def test_aborted_mask_file_leaves_nothing(tmp_path):
    writer = MaskFileWriter(tmp_path / "masks.npz", 2, 8, tmp_path / "scratch")
    writer.write(0, *(np.zeros((8, 8), np.uint8),) * 3, np.zeros(4), np.zeros(4))
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def moving_blob_masks(frames: int, size: int) -> np.ndarray:
    """Masks as a person gives them: an ellipse that moves a little each frame, uint8 [T, S, S] (255 inside)."""
    y, x = np.mgrid[:size, :size]
    centres = size / 2 + 0.1 * size * np.sin(np.arange(frames) / 7.0)
    return np.stack([(((x - c) / (0.3 * size)) ** 2 + ((y - 0.6 * size) / (0.4 * size)) ** 2 < 1) * 255
                     for c in centres]).astype(np.uint8)


def test_mask_scratch_is_compressed_so_a_killed_writer_leaves_little(tmp_path):
    """What sits on disk while the writer is open is what a SIGKILL leaves: the raw masks were 3 x T x S x S bytes
    (600 MB per 30 s at 512 px); compressed they are about 1% of that."""
    frames, size = 40, 128
    blobs = moving_blob_masks(frames, size)
    writer = MaskFileWriter(tmp_path / "masks.npz", frames, size, tmp_path / "scratch")
    for k in range(frames):
        writer.write(k, blobs[k], blobs[k] // 2, 255 - blobs[k], np.zeros(4), np.ones(4))
    on_disk = sum(p.stat().st_size for p in (tmp_path / "scratch").rglob("*") if p.is_file())
    assert on_disk < 0.05 * 3 * frames * size * size
    writer.close()
    assert not (tmp_path / "scratch").exists()
    loaded = Masks.load(tmp_path / "masks.npz")
    assert np.array_equal(loaded.person, blobs) and np.array_equal(loaded.head, blobs // 2)
    assert np.array_equal(loaded.torso, 255 - blobs) and np.array_equal(loaded.lip_rect, np.ones((frames, 4)))


def test_a_new_mask_file_removes_the_scratch_a_killed_writer_left(tmp_path):
    """A writer killed with SIGKILL cannot clean up; the next writer of the same folder does, so a rerun does not
    hold two runs' scratch at once, and nothing is left after it."""
    script = ("import os, signal, sys, numpy as np\n"
              "from engine.data.preprocess.maskfile import MaskFileWriter\n"
              "writer = MaskFileWriter(sys.argv[1] + '/masks.npz', 8, 64, sys.argv[1] + '/scratch')\n"
              "for k in range(8):\n"
              "    writer.write(k, *(np.full((64, 64), 255, np.uint8),) * 3, np.zeros(4), np.zeros(4))\n"
              "os.kill(os.getpid(), signal.SIGKILL)\n")
    killed = subprocess.run([sys.executable, "-c", script, str(tmp_path)])
    assert killed.returncode == -signal.SIGKILL
    left = [p for p in (tmp_path / "scratch").rglob("*") if p.is_file()]
    assert left, "the killed writer left its scratch"
    writer = MaskFileWriter(tmp_path / "masks.npz", 2, 8, tmp_path / "scratch")
    assert not any(p.exists() for p in left)
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_a_rerun_first_removes_what_killed_runs_left_and_keeps_a_running_writers_files(tmp_path):
    """Partial outputs of dead processes and the raw mask memory maps of runs before the scratch was deflated go
    before any step starts; files named by a live process (here this one) are another run's and stay."""
    from engine.data.preprocess.pipeline import MASK_SCRATCH, WORK, _remove_dead_scratch

    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout)
    out, scratch = tmp_path / "ds", tmp_path / "ds" / WORK / MASK_SCRATCH
    scratch.mkdir(parents=True)
    stale = [scratch / "person.npy", scratch / f".head.deflated.{dead}.partial.deflated",
             out / f".frames.mkv.{dead}.partial.mkv", out / f".masks.npz.{dead}.partial.npz"]
    live = out / f".audio.wav.{os.getpid()}.partial.wav"
    for path in [*stale, live]:
        path.write_bytes(b"x" * 1000)
    _remove_dead_scratch(out, out / WORK)
    assert not any(path.exists() for path in stale) and live.exists()
    assert not scratch.exists()


def test_mask_frames_must_come_in_order_and_all_before_close(tmp_path):
    writer = MaskFileWriter(tmp_path / "masks.npz", 3, 8, tmp_path / "scratch")
    blank = (np.zeros((8, 8), np.uint8),) * 3
    writer.write(0, *blank, np.zeros(4), np.zeros(4))
    with pytest.raises(ValueError, match="frame 2 .* expected frame 1"):
        writer.write(2, *blank, np.zeros(4), np.zeros(4))
    with pytest.raises(ValueError, match="1 of its 3 frames"):
        writer.close()
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_ledger_skips_only_a_matching_step_with_its_outputs(tmp_path):
    output = tmp_path / "out.bin"
    output.write_bytes(b"x")
    ledger = Ledger(tmp_path / "work" / "steps.json")
    key = step_key("a", 1, {"size": 512})
    assert not ledger.done("a", key, [output])
    ledger.record("a", key, 0.5, {"found": 3})
    again = Ledger(tmp_path / "work" / "steps.json")
    assert again.done("a", key, [output]) and again.info("a") == {"found": 3}
    assert not again.done("a", step_key("a", 1, {"size": 256}), [output])
    output.unlink()
    assert not again.done("a", key, [output])
    (tmp_path / "work" / "steps.json").write_text("{broken")
    assert Ledger(tmp_path / "work" / "steps.json").entries == {}


def test_file_fingerprint_changes_with_content(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"a" * 100)
    first = file_fingerprint(path)
    path.write_bytes(b"b" * 100)
    assert file_fingerprint(path)["sha256_edges"] != first["sha256_edges"] and file_fingerprint(None) is None


@pytest.mark.parametrize("changes, message", [
    ({"size": 16}, "--size 16"), ({"fps": 30.0}, "--fps 30.0"), ({"crop_faces": 0.5}, "--crop-faces"),
    ({"video": None}, "no VIDEO"), ({"out_dir": None}, "-o DATA_DIR"), ({"audio": Path("/nope.wav")}, "--audio"),
])
def test_bad_settings_name_the_value_and_the_fix(changes, message):
    settings = {"video": Path("talk.mp4"), "out_dir": Path("data/talk"), **changes}
    with pytest.raises(PreprocessError, match=message.replace(".", r"\.")):
        validate(PreprocessOptions(**settings))


def test_config_module_stays_light():
    import sys

    code = ("import json, sys, engine.data.preprocess.config; "
            "print(json.dumps(sorted(m for m in ('torch', 'mediapipe', 'av', 'cv2', 'taichi') if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_features_match_offline_extraction():
    from engine.audio.features import make_extractor
    from engine.audio.streaming import offline_frames
    from engine.data.preprocess.features import extract_features, feature_settings

    audio = np.random.default_rng(2).normal(0, 0.1, 16000).astype(np.float32)
    arrays = extract_features(audio, 25, 25.0)
    expected = offline_frames(make_extractor(feature_settings()), audio, gate=feature_settings().gate)
    assert np.array_equal(arrays["frames"], expected)
    settings = feature_settings()
    assert arrays["windows"].shape == (25, settings.window_frames, expected.shape[1])
    spec = json.loads(str(arrays["spec"]))
    assert spec["extractor"] == str(arrays["extractor"]) == settings.extractor
    # window k ends `lookahead` frames after video frame k's own two feature frames
    k = 10
    end = 2 * k + 2 + settings.lookahead_frames
    assert np.array_equal(arrays["windows"][k], expected[end - settings.window_frames:end])


def test_dataset_tracks_fill_gaps_across_a_roll_wrap_and_map_landmarks_through_the_crop():
    from engine.data.preprocess.track import RawTracks
    from engine.data.synth.presenter import euler_to_matrix

    frames = 12
    true = np.stack([176.0 + np.arange(frames), np.zeros(frames), np.arange(frames) * 0.5], axis=1)  # roll passes 180
    matrices = np.zeros((frames, 4, 4), np.float32)
    for k in range(frames):
        matrices[k, :3, :3] = euler_to_matrix(true[k])
        matrices[k, :3, 3] = (1.0, 2.0, -60.0)
        matrices[k, 3, 3] = 1.0
    detected = np.ones(frames, bool)
    detected[4:7] = False
    matrices[~detected] = np.nan
    landmarks = np.full((frames, 478, 3), 0.5, np.float32)
    landmarks[~detected] = np.nan
    blendshapes = np.full((frames, 52), 0.2, np.float32)
    blendshapes[~detected] = np.nan
    raw = RawTracks(detected, landmarks, blendshapes, matrices, [f"b{i}" for i in range(52)], 640, 480)
    tracks = pose.dataset_tracks(raw, (160, 40, 400, 400), 200)
    assert np.allclose(tracks.euler_deg, true, atol=1e-3), "the gap is filled along the unwrapped roll"
    assert tracks.valid.tolist() == detected.tolist()
    assert np.allclose(tracks.trans, [1.0, 2.0, -60.0]) and np.allclose(tracks.blendshapes, 0.2)
    assert np.allclose(tracks.landmarks2d, [(320 - 160) / 2, (240 - 40) / 2])


def test_a_face_that_jumps_for_one_frame_is_dropped():
    from engine.data.preprocess.track import RawTracks, drop_outliers

    frames = 30
    landmarks = np.zeros((frames, 478, 3), np.float32)
    landmarks[:, :, 0] = np.linspace(0.4, 0.6, 478)
    landmarks[:, :, 1] = np.linspace(0.3, 0.5, 478)
    landmarks[:, :, 0] += np.linspace(0, 0.05, frames)[:, None]  # the speaker drifts slowly: kept
    landmarks[10, :, :2] += 0.3  # another face, far away
    landmarks[20, :, 1] = 0.3 + (landmarks[20, :, 1] - 0.3) * 3  # three times the size
    raw = RawTracks(np.ones(frames, bool), landmarks, np.zeros((frames, 52), np.float32),
                    np.tile(np.eye(4, dtype=np.float32), (frames, 1, 1)), ["b"] * 52, 640, 480)
    cleaned, dropped = drop_outliers(raw, 25.0)
    assert dropped == 2 and np.flatnonzero(~cleaned.detected).tolist() == [10, 20]
    assert np.isnan(cleaned.matrices[10]).all() and np.isfinite(cleaned.landmarks[11]).all()


def test_blinks_keep_their_peaks_while_other_blendshapes_are_smoothed():
    from engine.data.preprocess.track import RawTracks

    frames = 20
    names = ["jawOpen", "eyeBlinkLeft", "eyeBlinkRight"]
    blendshapes = np.full((frames, 3), 0.1, np.float32)
    blendshapes[9:12] = [0.2, 0.6, 0.6]  # a 3-frame event in every channel
    blendshapes[10] = [0.9, 0.9, 0.9]
    raw = RawTracks(np.ones(frames, bool), np.full((frames, 478, 3), 0.5, np.float32), blendshapes,
                    np.tile(np.eye(4, dtype=np.float32), (frames, 1, 1)), names, 100, 100)
    tracks = pose.dataset_tracks(raw, (0, 0, 100, 100), 100)
    assert np.allclose(tracks.blendshape("eyeBlinkLeft"), blendshapes[:, 1])
    assert tracks.blendshape("jawOpen")[10] < 0.85, "the Savitzky-Golay filter applies to the other channels"


def test_hole_filling_blends_the_surroundings_and_keeps_known_pixels():
    image = np.zeros((64, 64, 3), np.float32)
    image[:, :32], image[:, 32:] = 200.0, 50.0
    holes = np.zeros((64, 64), bool)
    holes[20:44, 20:44] = True
    filled = background.fill_holes(image, holes)
    assert np.array_equal(filled[~holes], image[~holes])
    row = filled[32, 20:44, 0]
    assert np.all(np.diff(row) <= 1e-3) and row[0] > 150 and row[-1] < 100, "a smooth ramp from left to right"


def speech_like(samples: int, rate: int = 16000, seed: int = 0) -> np.ndarray:
    """A made-up voice as loud as a unit sine (peaks near 2): vowels as the harmonics of a 110-130 Hz voice falling
    12 dB per octave above 500 Hz, and four times a second 60 ms of hiss above 3 kHz (s, f, t), 15 dB below the
    vowels, as in speech. One 2 s period, repeated (the voice makes whole cycles in it: no clicks at the seams)."""
    rng = np.random.default_rng(seed)
    period = 2 * rate
    t = np.arange(period) / rate
    phase = 2 * np.pi * np.cumsum(120.0 + 10.0 * np.sin(2 * np.pi * 0.5 * t)) / rate
    vowels = sum(min(1.0, (500.0 / (h * 120.0)) ** 2) * np.sin(h * phase) for h in range(1, int(rate / 2 / 130)))
    spectrum = np.fft.rfft(rng.standard_normal(period))
    spectrum[np.fft.rfftfreq(period, 1.0 / rate) < 3000.0] = 0.0
    hissing = (t % 0.25) < 0.06
    hiss = np.fft.irfft(spectrum, period)
    hiss *= 10 ** (-15 / 20) * vowels.std() / hiss.std()
    voice = np.where(hissing, hiss, vowels)
    return np.resize(voice / voice.std() / np.sqrt(2.0), samples)


def through_8_khz(audio: np.ndarray, rate: int = 16000) -> np.ndarray:
    """The same sound as an 8 kHz recording played back at `rate` (the resampler decode_file uses)."""
    from engine.audio.sources import StreamResampler

    down, up = StreamResampler(rate, 8000), StreamResampler(8000, rate)
    narrow = np.concatenate([down.process(audio.astype(np.float32)), down.flush()])
    return np.concatenate([up.process(narrow), up.flush()])[:len(audio)]


def checked(seconds=150.0, speech_share=0.6, noise=0.0, gain=0.3, tracked=1.0, side=512, size=512, cut=0.0,
            residual=1.0, narrowband=False, source_rate=None, hands=0.0):
    """dataset_checks on made-up inputs: a speech-like voice (speech_share of each second) over white noise."""
    from engine.data.preprocess.checks import dataset_checks
    from engine.data.preprocess.track import RawTracks

    rate, fps = 16000, 25.0
    frames = int(seconds * fps)
    t = np.arange(frames * 640) / rate
    voice = through_8_khz(speech_like(len(t), rate)) if narrowband else speech_like(len(t), rate)
    audio = gain * voice * ((t % 1.0) < speech_share)
    audio = np.clip(audio + noise * np.random.default_rng(0).standard_normal(len(t)), -1.0, 1.0)
    detected = np.arange(frames) < tracked * frames
    raw = RawTracks(detected, np.zeros((frames, 478, 3), np.float32), np.zeros((frames, 52), np.float32),
                    np.zeros((frames, 4, 4), np.float32), ["_neutral"] * 52, 1280, 720)
    findings = dataset_checks(audio, rate, fps, raw, (0, 0, side, side), size, cut, residual,
                              audio_name="take.wav", source_rate=source_rate, hands=hands)
    return {f["check"]: f for f in findings}


def test_a_good_dataset_has_no_findings():
    assert checked() == {}


def test_each_limit_of_a_video_is_found_and_explained():
    found = checked(seconds=40.0, speech_share=0.05, noise=0.15, gain=3.0, tracked=0.8, side=300, cut=0.2,
                    residual=20.0, hands=0.1)
    assert set(found) == {"short", "little_speech", "noisy_audio", "clipped_audio", "untracked", "upscaled",
                          "head_cut", "background_changes", "hands"}
    assert "hand is in the picture in 10%" in found["hands"]["message"]
    assert "40 s of video" in found["short"]["message"]
    assert "--size 288" in found["upscaled"]["message"]
    assert found["upscaled"]["value"] == pytest.approx(512 / 300, abs=1e-4)
    assert found["untracked"]["value"] == pytest.approx(0.2) and found["head_cut"]["value"] == pytest.approx(0.2)
    assert "no_pauses" in checked(speech_share=1.0)


@pytest.mark.slow
def test_narrowband_speech_is_found_from_its_sound_whatever_rate_the_file_declares():
    """The same voice recorded at 8 kHz: 99.99% of its energy lies below 4 kHz, against about 8 kHz full band; the
    message names the file, the bandwidth, the rate the file declares and the fix."""
    from engine.data.preprocess.checks import NARROWBAND_HZ, speech_bandwidth_hz

    audio = speech_like(16000 * 4)
    speech = np.ones(100, bool)
    assert speech_bandwidth_hz(audio, 16000, 25.0, speech) > 7000.0
    assert 3500.0 < speech_bandwidth_hz(through_8_khz(audio), 16000, 25.0, speech) <= 4100.0
    assert speech_bandwidth_hz(audio, 16000, 25.0, np.zeros(100, bool)) is None, "no speech: nothing to measure"
    assert speech_bandwidth_hz(audio, 16000, 25.0, speech, share=0.99) < NARROWBAND_HZ, \
        "the 99% point of full-band speech lies as low as narrowband speech's: why BANDWIDTH_SHARE is 99.99%"
    found = checked(narrowband=True, source_rate=8000)
    assert set(found) == {"narrowband_audio"} and 3500.0 < found["narrowband_audio"]["value"] <= 4100.0
    message = found["narrowband_audio"]["message"]
    bandwidth = found["narrowband_audio"]["value"]
    assert message.startswith("take.wav: ") and f"below {bandwidth / 1000:.1f} kHz" in message
    assert "recorded at 8000 Hz" in message
    assert "16 kHz or more" in message
    upsampled = checked(narrowband=True, source_rate=44100)["narrowband_audio"]["message"]
    assert "sampled at 44100 Hz" in upsampled and "upsampled" in upsampled
    assert "recorded at 8 kHz" in checked(narrowband=True)["narrowband_audio"]["message"], "rate unknown"
    assert "narrowband_audio" not in checked(source_rate=44100)


def test_a_head_cut_by_the_frame_edge_is_seen_in_its_mask():
    from engine.data.preprocess.checks import head_touches_edge

    head = np.zeros((64, 64), np.uint8)
    head[10:40, 20:44] = 255
    assert not head_touches_edge(head)
    head[0, 20:44] = 255
    assert head_touches_edge(head)


def rigid_scene(frames: int = 120, seed: int = 0):
    """A known face (478 points, cm), known poses and their landmarks at 256 px with 0.3 px noise."""
    from engine.data.dataset import Camera

    rng = np.random.default_rng(seed)
    points = rng.normal(size=(478, 3)) * [5.0, 7.0, 2.0] + [0.0, 0.0, 3.0]
    euler = np.stack([rng.uniform(-5, 5, frames), rng.uniform(-15, 10, frames), rng.uniform(-25, 25, frames)], 1)
    trans = np.stack([rng.uniform(-4, 4, frames), rng.uniform(-6, -2, frames), rng.uniform(-50, -35, frames)], 1)
    camera = Camera(focal_px=209.0, cx=125.0, cy=128.0)
    world = np.einsum("tij,nj->tni", pose._euler_matrices(euler), points) + trans[:, None]
    pixels = pose._project(world, camera)[0] + rng.normal(scale=0.3, size=(frames, 478, 2))
    return points, euler, trans, camera, pixels, rng


def test_refine_poses_recovers_known_rigid_poses_from_a_biased_start():
    points, euler, trans, camera, pixels, rng = rigid_scene()
    ids = list(pose.RIGID_LANDMARKS)
    reference = points[ids] + rng.normal(scale=0.1, size=(len(ids), 3))  # an average face, not the person's
    start_euler = euler + [0.5, 3.0, -2.0] + rng.normal(scale=1.0, size=euler.shape)  # biased, noisy tracker
    start_trans = trans + [0.5, -0.5, 2.0]
    valid = np.ones(len(euler), bool)
    valid[[7, 8, 50]] = False
    result = pose.refine_poses(pixels, camera, start_euler, start_trans, valid, reference=reference)
    rotation_error = np.abs(result.euler_deg - euler)[valid]
    trans_error = np.abs(result.trans - trans)[valid]
    assert np.median(rotation_error) < 0.3 and rotation_error.max() < 1.0, "degrees"
    assert np.median(trans_error) < 0.2 and trans_error.max() < 0.6, "cm"
    assert np.sqrt(((result.template - points[ids]) ** 2).sum(1).mean()) < 0.2
    assert result.report["reprojection_px_refined"]["median"] < 0.4 < result.report["reprojection_px_input"]["median"]
    assert np.isfinite(result.euler_deg).all() and np.isfinite(result.trans).all(), "gaps are interpolated"


def test_refine_poses_ignores_expressions_of_non_rigid_points_and_a_few_bad_landmarks():
    points, euler, trans, camera, pixels, rng = rigid_scene(seed=1)
    ids = list(pose.RIGID_LANDMARKS)
    valid = np.ones(len(euler), bool)
    calm = pose.refine_poses(pixels, camera, euler, trans, valid, reference=points[ids])
    making_faces = pixels.copy()
    jaw = rng.uniform(0, 1, len(euler))[:, None, None]
    mouth = [i for i in range(478) if i not in set(ids)]
    making_faces[:, mouth] += jaw * [0.0, 12.0]  # jaw opens: every non-rigid point slides down up to 12 px
    moved = pose.refine_poses(making_faces, camera, euler, trans, valid, reference=points[ids])
    assert np.allclose(moved.euler_deg, calm.euler_deg, atol=1e-6) and np.allclose(moved.trans, calm.trans, atol=1e-6)
    outliers = rng.random((len(euler), len(ids))) < 0.03  # and 3% of the rigid points jump by 8 px
    making_faces[:, ids] += outliers[..., None] * [8.0, -8.0]
    moved = pose.refine_poses(making_faces, camera, euler, trans, valid, reference=points[ids])
    change = np.abs(moved.euler_deg - calm.euler_deg)
    assert np.median(change) < 0.1 and change.max() < 1.5, "degrees; robust to a few bad landmarks"
    assert np.median(np.abs(moved.trans - calm.trans)) < 0.1
    assert np.median(np.abs(moved.euler_deg - euler)) < 0.3
