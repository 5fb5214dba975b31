"""`syncanim eval`: the report end to end on a tiny trained avatar, --compare, report.md, and errors that name
the missing file."""
import json
from pathlib import Path

import numpy as np
import pytest

from engine.cli import main
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
    assert set(driven["blendshape_mae"]) == {"eyeBlinkLeft", "eyeBlinkRight", "browDownLeft", "browDownRight",
                                             "browInnerUp", "browOuterUpLeft", "browOuterUpRight"}
    assert report["machine"]["cores"] >= 1 and report["seconds"]["total"] > 0 and report["versions"]["torch"]
    for name in ("pose.png", "blinks.png", "mouth.png", "report.md"):
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
