"""Lip sync against the speaker's own mouth when --audio is a video of someone speaking."""
import json

import numpy as np
import pytest

from engine.cli import main
from engine.data.synth import SynthOptions, run_synth
from engine.eval import metrics
from engine.eval.report import track_faces
from engine.eval.speaker import has_video, speaker_figures, speaker_opening


@pytest.fixture(scope="module")
def speaker_clip(tmp_path_factory):
    """4 s of the synthetic presenter speaking (video.mp4 with its sound, audio.wav, truth.npz)."""
    return run_synth(SynthOptions(tmp_path_factory.mktemp("speaker"), seconds=4.0, seed=1, size=128, progress=False))


def test_the_speakers_mouth_is_measured_on_the_videos_frames_in_step_with_its_sound(speaker_clip):
    import imageio.v3 as iio

    video = speaker_clip / "video.mp4"
    assert has_video(video) and not has_video(speaker_clip / "audio.wav")
    frames = list(iio.imread(video))
    direct = metrics.mouth_opening(track_faces(frames, 25.0, None, "speaker", False).landmarks)
    opening = speaker_opening(video, 25.0, len(frames) + 5, None)
    assert len(opening) == len(frames) + 5 and np.isnan(opening[-5:]).all()  # the video ended
    assert np.isfinite(opening[:len(frames)]).mean() > 0.9 and np.nanstd(opening) > 0.005  # he speaks
    assert np.nanmax(np.abs(opening[:len(frames)] - direct)) < 1e-6
    at_12_5 = speaker_opening(video, 12.5, len(frames) // 2, None)  # another frame rate: every other frame
    assert np.nanmax(np.abs(at_12_5 - direct[::2][:len(at_12_5)])) < 1e-6


def test_lip_sync_is_the_rendered_mouth_against_the_speakers():
    t = np.arange(200) / 25.0
    speaker = 0.05 + 0.04 * np.sin(2 * np.pi * 1.5 * t)
    speaker[:10] = np.nan  # no face there
    envelope, speech = np.abs(np.sin(2 * np.pi * 0.7 * t)), t < 6.0
    same = speaker_figures(speaker.copy(), speaker, envelope, speech)
    assert same["lip_sync_corr"] == pytest.approx(1.0) and "speaker" in same["lip_sync_reference"]
    assert same["speaker"]["faces_found"] == 190
    assert same["speaker"]["lip_sync_corr_envelope"] == pytest.approx(metrics.correlation(speaker, envelope))
    late = speaker_figures(np.roll(speaker, 5), speaker, envelope, speech)  # 200 ms behind
    assert late["lip_sync_corr"] < 0.5


def test_eval_with_a_speakers_video_reports_both_mouths(tiny_avatar, speaker_clip, tmp_path):
    out = tmp_path / "report"
    assert main(["eval", str(tiny_avatar), "-o", str(out), "--audio", str(speaker_clip / "video.mp4"),
                 "--size", "32", "--no-progress", "--no-perceptual"]) == 0
    driven = json.loads((out / "report.json").read_text())["audio_driven"]
    assert driven["lip_sync_reference"] == "MediaPipe mouth opening of the speaker in the --audio video"
    speaker = driven["speaker"]
    assert speaker["faces_found"] >= 90 and -1 <= speaker["lip_sync_corr_envelope"] <= 1
    assert speaker["mouth_open_speech"] > 0
    assert "| speaker (the --audio video) |" in (out / "report.md").read_text()
