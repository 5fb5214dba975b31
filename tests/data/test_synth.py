"""The synthetic presenter end to end: files, frame counts, speech truth, MediaPipe on the frames, determinism."""
from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest

from engine.data.synth import SynthOptions, run_synth
from engine.io.video import probe

SECONDS, FPS, SIZE, SEED = 5.0, 25.0, 256, 11


def decode_frames(path: Path) -> np.ndarray:
    """All frames of an mp4 as [T, H, W, 3] uint8."""
    import av

    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path)) as handle:
        data = np.frombuffer(handle.readframes(handle.getnframes()), np.int16)
        return data.astype(np.float32) / 32768.0, handle.getframerate()


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "clip"
    return run_synth(SynthOptions(out, seconds=SECONDS, seed=SEED, size=SIZE, fps=FPS, progress=False))


@pytest.fixture(scope="module")
def truth(clip) -> dict:
    with np.load(clip / "truth.npz") as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="module")
def mediapipe_results(clip):
    """MediaPipe FaceLandmarker (IMAGE mode: every frame judged on its own) on every frame of the clip."""
    import mediapipe as mp

    from engine.data.face_model import create_face_landmarker

    results = []
    with create_face_landmarker() as landmarker:
        for frame in decode_frames(clip / "video.mp4"):
            image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(frame))
            results.append(landmarker.detect(image))
    return results


def test_writes_video_audio_and_truth_with_matching_lengths(clip, truth):
    frames = int(round(SECONDS * FPS))
    info = probe(clip / "video.mp4")
    assert info.frames == frames and info.fps == pytest.approx(FPS) and (info.width, info.height) == (SIZE, SIZE)
    assert info.audio_duration_s == pytest.approx(SECONDS, abs=0.1)
    audio, rate = read_wav(clip / "audio.wav")
    assert len(audio) == int(SECONDS * rate)
    names = [str(name) for name in truth["blendshape_names"]]
    for required in ("jawOpen", "mouthClose", "mouthFunnel", "mouthPucker", "mouthSmileLeft", "mouthSmileRight",
                     "mouthStretchLeft", "mouthStretchRight", "eyeBlinkLeft", "eyeBlinkRight", "browInnerUp"):
        assert required in names
    assert truth["euler_deg"].shape == (frames, 3) and truth["trans"].shape == (frames, 3)
    assert truth["blendshapes"].shape == (frames, len(names))
    assert truth["speaking"].shape == (frames,) and truth["speaking"].dtype == bool
    assert truth["landmarks2d"].shape == (frames, 478, 2)
    assert float(truth["fps"]) == FPS and int(truth["seed"]) == SEED
    meta = json.loads(str(truth["meta"]))
    assert meta["camera"]["width"] == SIZE and "Eq. 1" in meta["pose"]
    assert not list(clip.glob(".*partial*")), "temporary files were left behind"


def test_speaking_agrees_with_audio_energy(clip, truth):
    audio, rate = read_wav(clip / "audio.wav")
    hop = int(rate / FPS)
    frames = len(truth["speaking"])
    rms = np.sqrt(np.mean(audio[: frames * hop].reshape(frames, hop) ** 2, axis=1))
    loud = 20 * np.log10(rms + 1e-9) > -45.0
    speaking = truth["speaking"]
    agreement = np.mean(loud == speaking)
    assert agreement >= 0.9, f"speaking agrees with audio energy on only {agreement:.0%} of frames"
    # Silence is really silent away from speech edges (a frame at an edge holds part of a phoneme).
    inner_silence = ~speaking & ~np.roll(speaking, 1) & ~np.roll(speaking, -1)
    assert rms[inner_silence].max() < 0.005
    assert 1.0 - speaking.mean() >= 0.2


def test_mediapipe_finds_the_face_in_nearly_every_frame(mediapipe_results, truth):
    found = np.array([bool(result.face_landmarks) for result in mediapipe_results])
    assert found.mean() >= 0.98, f"MediaPipe found the face in {found.mean():.1%} of frames"
    # Where it does, its landmarks land on the rig's: median error under 2% of the image.
    errors = []
    for index, result in enumerate(mediapipe_results):
        if result.face_landmarks:
            points = np.array([[p.x * SIZE, p.y * SIZE] for p in result.face_landmarks[0]])
            errors.append(np.median(np.linalg.norm(points - truth["landmarks2d"][index], axis=1)))
    assert np.median(errors) < 0.02 * SIZE


def test_truth_jaw_open_matches_the_mouth_opening_mediapipe_measures(mediapipe_results, truth):
    names = [str(name) for name in truth["blendshape_names"]]
    jaw = truth["blendshapes"][:, names.index("jawOpen")]
    opening, scores, kept = [], [], []
    for index, result in enumerate(mediapipe_results):
        if not result.face_landmarks:
            continue
        points = np.array([[p.x, p.y] for p in result.face_landmarks[0]])
        # Inner-lip gap (13 upper, 14 lower) over face height (10 forehead, 152 chin): scale free.
        opening.append(np.linalg.norm(points[13] - points[14]) / np.linalg.norm(points[10] - points[152]))
        scores.append({c.category_name: c.score for c in result.face_blendshapes[0]}["jawOpen"])
        kept.append(index)
    assert jaw[kept].std() > 0.05, "the clip hardly opens the mouth; the correlation would mean nothing"
    r_opening = np.corrcoef(jaw[kept], opening)[0, 1]
    r_score = np.corrcoef(jaw[kept], scores)[0, 1]
    assert r_opening >= 0.9, f"truth jawOpen vs MediaPipe lip gap: r = {r_opening:.3f}"
    assert r_score >= 0.7, f"truth jawOpen vs MediaPipe's jawOpen score: r = {r_score:.3f}"


def test_blinks_are_seen_by_mediapipe(mediapipe_results, truth):
    names = [str(name) for name in truth["blendshape_names"]]
    blink = truth["blendshapes"][:, names.index("eyeBlinkLeft")]
    if blink.max() < 0.5:
        pytest.fail("the test clip has no blink; pick a seed whose 5 s clip blinks")
    seen = np.array([
        {c.category_name: c.score for c in r.face_blendshapes[0]}["eyeBlinkLeft"] if r.face_landmarks else np.nan
        for r in mediapipe_results
    ])
    ok = ~np.isnan(seen)
    assert np.corrcoef(blink[ok], seen[ok])[0, 1] >= 0.7


@pytest.mark.slow
def test_same_seed_gives_identical_truth_and_frames(tmp_path):
    config = SynthOptions(tmp_path / "a", seconds=2.5, seed=5, size=128, progress=False)
    first = run_synth(config)
    second = run_synth(SynthOptions(tmp_path / "b", seconds=2.5, seed=5, size=128, progress=False))
    with np.load(first / "truth.npz") as a, np.load(second / "truth.npz") as b:
        assert a.files == b.files
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    np.testing.assert_array_equal(decode_frames(first / "video.mp4"), decode_frames(second / "video.mp4"))
    assert (first / "audio.wav").read_bytes() == (second / "audio.wav").read_bytes()
    other = run_synth(SynthOptions(tmp_path / "c", seconds=2.5, seed=6, size=128, progress=False))
    with np.load(first / "truth.npz") as a, np.load(other / "truth.npz") as c:
        assert json.loads(str(a["meta"]))["voice"] != json.loads(str(c["meta"]))["voice"]
        assert not np.array_equal(a["euler_deg"], c["euler_deg"])
    assert not np.array_equal(decode_frames(first / "video.mp4")[0], decode_frames(other / "video.mp4")[0])


@pytest.mark.slow
def test_a_failed_render_leaves_no_truth_beside_the_video(tmp_path, monkeypatch):
    from engine.data.synth import presenter

    out = run_synth(SynthOptions(tmp_path / "clip", seconds=2.0, seed=1, size=96, progress=False))
    video_before = (out / "video.mp4").read_bytes()
    calls = {"n": 0}
    original = presenter.Presenter.render

    def failing_render(self, weights, pose, index):  # fault injection: the disk fills up mid-clip
        calls["n"] += 1
        if calls["n"] == 10:
            raise OSError("no space left on device")
        return original(self, weights, pose, index)

    monkeypatch.setattr(presenter.Presenter, "render", failing_render)
    with pytest.raises(OSError):
        run_synth(SynthOptions(out, seconds=2.0, seed=2, size=96, progress=False))
    assert not (out / "truth.npz").exists()
    assert (out / "video.mp4").read_bytes() == video_before
    assert not list(out.glob(".*partial*"))


def test_truth_pose_has_mediapipes_axes_and_signs(mediapipe_results, truth):
    from engine.data.synth.presenter import matrix_to_euler

    measured, kept = [], []
    for index, result in enumerate(mediapipe_results):
        if result.facial_transformation_matrixes:
            measured.append(matrix_to_euler(np.asarray(result.facial_transformation_matrixes[0])[:3, :3]))
            kept.append(index)
    measured, expected = np.array(measured), truth["euler_deg"][kept]
    error = np.abs(measured - expected).mean(axis=0)
    assert np.all(error < 2.5), f"mean |MediaPipe - truth| (roll, pitch, yaw) = {error.round(2)} degrees"
    for axis in (0, 2):  # roll and yaw move enough within 5 s to correlate
        assert np.corrcoef(measured[:, axis], expected[:, axis])[0, 1] > 0.8


def test_named_expressions_move_mediapipes_matching_scores(mediapipe_results, truth):
    """Brows, rounding, smiling and stretching: MediaPipe's scores of the same names follow the rig's."""
    names = [str(name) for name in truth["blendshape_names"]]
    found = [i for i, r in enumerate(mediapipe_results) if r.face_blendshapes]
    scores = [{c.category_name: c.score for c in mediapipe_results[i].face_blendshapes[0]} for i in found]
    correlations = {}
    for name in ("browInnerUp", "mouthPucker", "mouthFunnel", "mouthSmileLeft", "mouthSmileRight"):
        rig_values = truth["blendshapes"][found, names.index(name)]
        if rig_values.std() < 0.02:
            continue  # this shape hardly moves in the clip
        correlations[name] = np.corrcoef(rig_values, [s[name] for s in scores])[0, 1]
    assert len(correlations) >= 4, f"too few shapes move in the test clip: {correlations}"
    assert all(r > 0.4 for r in correlations.values()), correlations
