"""`syncanim eval`: the report end to end on a tiny trained avatar, --compare, report.md, and errors that name
the missing file."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.cli import main
from engine.motion.config import EXPRESSION
from engine.eval.report import compare_rows, load_report
from engine.eval.report_md import render_markdown

REQUIRED = {
    "reconstruction": ("psnr", "ssim", "lmd"),
    "audio_driven": ("mode", "lip_sync_corr", "pose_div_speech", "pose_div_silence", "blinks_per_min",
                     "mouth_open_speech", "mouth_open_silence"),
}


def _report(avatar: str, psnr: float, corr: float | None) -> dict:
    """A minimal report.json of the shape run_eval writes."""
    return {
        "format": "syncanim-eval", "version": 1, "avatar": avatar, "data": "/d", "created": "now",
        "machine": {"cpu": "test cpu", "cores": 2, "device": "cpu"}, "seconds": {"total": 10.0},
        "reconstruction": {"frames": 6, "size": 32, "psnr": psnr, "ssim": 0.9, "lmd": None, "lmd_frames": 0,
                           "lmd_unit": "px", "faces_found_truth": 6, "faces_found_render": 0},
        "audio_driven": {"mode": "one-shot", "audio": "validation audio", "seconds": 0.24, "speech_fraction": 0.5,
                         "lip_sync_corr": corr, "lip_sync_corr_envelope": None, "lip_sync_reference": "truth",
                         "mouth_open_speech": 0.05, "mouth_open_silence": 0.01, "pose_div_speech": 2.0,
                         "pose_div_silence": 1.0, "pose_div_ratio": 2.0, "vad": "energy", "blinks_per_min": 12.0,
                         "blinks_per_min_rendered_blendshape": None, "blinks_per_min_motion": 15.0},
        "dataset_checks": ["20 s of video: 3-5 minutes ..."],
        "unavailable": {"FID": "no weights"},
        "files": {"pose_plot": "pose.png"},
    }


def test_compare_prints_both_reports_and_the_difference(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b.json"
    a.mkdir()
    (a / "report.json").write_text(json.dumps(_report("/x/avatar_a", 30.0, 0.5)))
    b.write_text(json.dumps(_report("/x/avatar_b", 31.5, None)))
    assert main(["eval", "--compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "avatar_a" in out and "avatar_b" in out
    psnr_line = next(line for line in out.splitlines() if "reconstruction.psnr" in line)
    assert "30" in psnr_line and "31.5" in psnr_line and "+1.5" in psnr_line
    rows = {row[0]: row for row in compare_rows(load_report(a), load_report(b))}
    assert rows["audio_driven.lip_sync_corr"] == ("audio_driven.lip_sync_corr", "0.5", "-", "")
    assert rows["audio_driven.mode"][1:] == ("one-shot", "one-shot", "")


def test_compare_refuses_a_file_that_is_not_a_report(tmp_path, capsys):
    other = tmp_path / "x.json"
    other.write_text(json.dumps({"device": "cpu"}))
    assert main(["eval", "--compare", str(other), str(tmp_path / "missing")]) == 2
    assert "not a syncanim-eval report" in capsys.readouterr().err


def test_markdown_has_a_table_per_section():
    text = render_markdown(_report("/x/avatar", 30.0, 0.5))
    assert "| 30 | 0.9 | - | unavailable | 6 / 0 |" in text
    assert "| audio-driven | 0.5 | - | 0.05 | 0.01 |" in text
    assert "| audio-driven | 2 | 1 | 2 |" in text
    assert "| FID | no weights |" in text and "![head pose](pose.png)" in text
    assert "- Dataset check: 20 s of video" in text


def test_missing_files_are_named_with_the_fix(tmp_path, capsys, eval_data):
    avatar = tmp_path / "avatar"
    assert main(["eval", str(avatar), "--data", str(eval_data), "-o", str(tmp_path / "r")]) == 2
    assert "syncanim train" in capsys.readouterr().err
    avatar.mkdir()
    (avatar / "nerf.safetensors").write_bytes(b"")
    assert main(["eval", str(avatar), "--data", str(eval_data), "-o", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "motion.safetensors is missing" in err and "--stage motion" in err
    (avatar / "motion.safetensors").write_bytes(b"")
    assert main(["eval", str(avatar), "--data", str(tmp_path / "nodata"), "-o", str(tmp_path / "r")]) == 2
    assert "no meta.json" in capsys.readouterr().err
    assert main(["eval", str(avatar), "--data", str(eval_data), "-o", str(tmp_path / "r"),
                 "--audio", str(tmp_path / "none.wav")]) == 2
    assert "--audio" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_report_end_to_end_on_a_tiny_avatar(eval_avatar, eval_data, tmp_path):
    from engine.io.video import probe, write_wav

    out = tmp_path / "report"
    assert main(["eval", str(eval_avatar), "--data", str(eval_data), "-o", str(out), "--size", "32",
                 "--no-progress"]) == 0
    report = json.loads((out / "report.json").read_text())
    for section, keys in REQUIRED.items():
        assert set(keys) <= set(report[section]), section
    assert {"LPIPS", "FID", "SyncScore (LSE-C, LSE-D)", "AUE"} <= set(report["unavailable"])
    recon, driven = report["reconstruction"], report["audio_driven"]
    assert recon["frames"] == 6 and 12.0 < recon["psnr"] < 60.0 and 0.0 < recon["ssim"] <= 1.0
    assert driven["mode"] == "one-shot" and driven["frames"] == 6
    assert driven["pose_div_speech"] is None or driven["pose_div_speech"] >= 0.0
    assert set(driven["blendshape_mae"]) == set(EXPRESSION)  # the upper face and the mouth
    assert report["machine"]["cores"] >= 1 and report["seconds"]["total"] > 0 and report["versions"]["torch"]
    with np.load(out / "curves.npz") as curves:
        assert curves["euler"].shape == (6, 3) and curves["speech"].shape == (6,)
    for name in ("pose.png", "blinks.png", "mouth.png", "torso.png", "report.md"):
        assert (out / name).stat().st_size > 0, name
    video = probe(out / "sidebyside.mp4")
    assert (video.frames, video.width, video.height) == (6, 96, 32) and video.audio_duration_s > 0.1
    assert "PSNR" in (out / "report.md").read_text()
    assert not list(out.glob(".*partial*"))

    # any speech file, zero-shot: no truth, so the lip-sync proxy is against the speech envelope
    rate = 16000
    t = np.arange(2 * rate) / rate
    speech = np.where(t < 1.0, 0.3 * np.sin(2 * np.pi * 250 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)), 0.0)
    write_wav(tmp_path / "speech.wav", speech, rate)
    other = tmp_path / "report2"
    assert main(["eval", str(eval_avatar), "--data", str(eval_data), "-o", str(other), "--size", "32",
                 "--audio", str(tmp_path / "speech.wav"), "--mode", "zero-shot", "--no-progress"]) == 0
    driven = json.loads((other / "report.json").read_text())["audio_driven"]
    assert driven["mode"] == "zero-shot" and driven["frames"] == 50
    assert driven["speech_fraction"] == pytest.approx(30 / 50)  # 25 frames of tone + 5 of hangover
    assert "envelope" in driven["lip_sync_reference"] and "truth" not in driven
    assert driven["pose_div_speech"] > 0.0 and driven["pose_div_silence"] >= 0.0
    assert probe(other / "audio_driven.mp4").frames == 50


def _landmarks(frames: int, lip_gap: np.ndarray, closed: tuple[int, ...]) -> np.ndarray:
    """[T, 478, 2]: a 100 px tall face whose inner lips are lip_gap [T] apart; eyes EAR 0.4, shut on `closed`."""
    from engine.eval import metrics

    points = np.full((frames, 478, 2), 50.0)
    for eye, x0 in ((metrics.RIGHT_EYE, 0.0), (metrics.LEFT_EYE, 20.0)):
        p1, p2, p3, p4, p5, p6 = eye
        points[:, p1], points[:, p4] = (x0, 0.0), (x0 + 10.0, 0.0)
        half = np.where(np.isin(np.arange(frames), closed), 0.0, 2.0)
        for p, x, sign in ((p2, 3, -1), (p3, 7, -1), (p6, 3, 1), (p5, 7, 1)):
            points[:, p, 0], points[:, p, 1] = x0 + x, sign * half
    points[:, 10], points[:, 152] = (50.0, 0.0), (50.0, 100.0)
    points[:, 13, 1], points[:, 14, 1] = 60.0, 60.0 + lip_gap
    return points


def test_audio_driven_numbers_from_constructed_motion_and_faces():
    from engine.audio import activity
    from engine.eval.eval_config import EvalConfig
    from engine.eval.report import FaceTrack, audio_driven_metrics

    fps, rate, frames = 25.0, 16000, 50
    t = np.arange(2 * rate) / rate
    audio = np.where(t < 1.0, 0.3 * np.sin(2 * np.pi * 250 * t), 0.0)
    speech = activity.speech_mask(audio, rate, fps, frames)
    assert speech.sum() == 30  # 25 frames of tone, 5 of hangover
    sign = np.where(np.arange(frames) % 2, 1.0, -1.0)[:, None]
    euler = np.where(speech[:, None], 2.0 * sign, 0.5 * sign) * np.ones(3)
    names = ["eyeBlinkLeft", "eyeBlinkRight", "browInnerUp"]
    predicted = np.zeros((frames, 3))
    predicted[20:23, :2] = 0.8  # one blink in the motion model's output
    motion = {"euler_deg": euler, "trans": np.zeros((frames, 3)), "blendshapes": predicted,
              "blendshape_names": np.array(names), "time_s": np.arange(frames) / fps}
    gap = np.where(speech, 10.0, 2.0) + np.sin(np.arange(frames))  # opening 0.1 in speech, 0.02 in silence
    faces = FaceTrack(_landmarks(frames, gap, closed=(10, 40)), np.zeros((frames, 0)), [])
    truth_blend = predicted.copy()
    truth_blend[:, 2] = 0.1  # browInnerUp off by 0.1 everywhere
    truth = {"euler_deg": np.zeros((frames, 3)), "blendshapes": truth_blend, "names": names,
             "faces": FaceTrack(_landmarks(frames, 2 * gap, closed=()), np.zeros((frames, 0)), [])}
    result, curves = audio_driven_metrics(EvalConfig(), motion, faces, audio, rate, fps, truth)
    assert result["pose_div_speech"] == pytest.approx(2.0) and result["pose_div_silence"] == pytest.approx(0.5)
    assert result["pose_div_ratio"] == pytest.approx(4.0)
    assert result["mouth_open_speech"] == pytest.approx(0.1, abs=0.01)
    assert result["mouth_open_silence"] == pytest.approx(0.02, abs=0.01)
    assert result["lip_sync_corr"] == pytest.approx(1.0)  # truth opens twice as wide, in step
    assert result["blinks_per_min"] == pytest.approx(60.0)  # 2 EAR blinks in 2 s
    assert result["blinks_per_min_motion"] == pytest.approx(30.0)
    assert result["blendshape_mae"] == pytest.approx({"eyeBlinkLeft": 0.0, "eyeBlinkRight": 0.0, "browInnerUp": 0.1})
    assert result["truth"]["pose_div_speech"] == 0.0 and result["truth"]["blinks_per_min"] == pytest.approx(30.0)
    np.testing.assert_array_equal(curves["ear_blinks"], [10, 40])
    no_truth, _ = audio_driven_metrics(EvalConfig(), motion, faces, audio, rate, fps, None)
    assert no_truth["lip_sync_corr"] == no_truth["lip_sync_corr_envelope"] > 0.5


@pytest.mark.slow
def test_a_silent_recording_is_reconstructed_and_driven_only_by_given_speech(eval_avatar, eval_data, tmp_path):
    from engine.data.dataset import Dataset
    from engine.io.video import probe, write_wav

    data, avatar = tmp_path / "silent", tmp_path / "renderer_only"
    shutil.copytree(eval_data, data)
    meta = json.loads((data / "meta.json").read_text())
    (data / "meta.json").write_text(json.dumps({**meta, "silent": True}))
    write_wav(data / "audio.wav", np.zeros(48 * 640, np.float32), 16000)
    avatar.mkdir()
    shutil.copy(eval_avatar / "nerf.safetensors", avatar)  # no motion model: nothing is driven by audio
    assert Dataset(data).meta.silent
    out = tmp_path / "report"
    assert main(["eval", str(avatar), "--data", str(data), "-o", str(out), "--size", "32", "--no-progress"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["reconstruction"]["frames"] == 6 and report["reconstruction"]["psnr"] > 12.0
    assert "silent recording" in report["audio_driven"]["unavailable"]
    assert "pose_plot" not in report["files"] and not (out / "curves.npz").exists()
    assert "Not run:" in (out / "report.md").read_text()
    video = probe(out / "sidebyside.mp4")
    assert (video.frames, video.width) == (6, 64) and not video.audio_duration_s
    write_wav(tmp_path / "speech.wav", 0.2 * np.sin(np.linspace(0, 900, 32000)), 16000)
    assert main(["eval", str(avatar), "--data", str(data), "-o", str(out), "--size", "32", "--no-progress",
                 "--audio", str(tmp_path / "speech.wav")]) == 2  # speech to drive, but no motion model to hear it
