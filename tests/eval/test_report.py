"""`syncanim eval`: the report end to end on a tiny trained avatar, --compare, report.md, and errors that name
the missing file."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.cli import main
from engine.eval.report import compare_rows, load_report
from engine.eval.report_md import render_markdown
from engine.motion.config import EXPRESSION

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
    assert "| 30 | 0.9 | - | n/a | n/a | n/a | 6 / 0 |" in text
    assert "| audio-driven | 0.5 | - | 0.05 | 0.01 |" in text
    assert "| commanded (motion model) | 2 | 1 | 2 | - |" in text
    assert "| FID | no weights |" in text and "![head pose](pose.png)" in text
    assert "- Dataset check: 20 s of video" in text
    assert "blink peak" not in text  # an avatar trained before the blink gain
    report = _report("/x/avatar", 30.0, 0.5)
    report["audio_driven"]["blink_gain"] = 1.3
    assert "Blinks are shown at 1.3x the person's own blink peak" in render_markdown(report)


def test_missing_files_are_named_with_the_fix(tmp_path, capsys, tiny_data):
    avatar = tmp_path / "avatar"
    assert main(["eval", str(avatar), "--data", str(tiny_data), "-o", str(tmp_path / "r")]) == 2
    assert "syncanim train" in capsys.readouterr().err
    avatar.mkdir()
    (avatar / "nerf.safetensors").write_bytes(b"")
    assert main(["eval", str(avatar), "--data", str(tiny_data), "-o", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "motion.safetensors is missing" in err and "--stage motion" in err
    (avatar / "motion.safetensors").write_bytes(b"")
    assert main(["eval", str(avatar), "--data", str(tmp_path / "nodata"), "-o", str(tmp_path / "r")]) == 2
    assert "no meta.json" in capsys.readouterr().err
    assert main(["eval", str(avatar), "--data", str(tiny_data), "-o", str(tmp_path / "r"),
                 "--audio", str(tmp_path / "none.wav")]) == 2
    assert "--audio" in capsys.readouterr().err
    assert main(["eval", str(avatar), "--data", str(tiny_data), "-o", str(tmp_path / "r"),
                 "--cross-audio", str(tmp_path / "other.wav")]) == 2
    err = capsys.readouterr().err
    assert "--cross-audio" in err and "other.wav" in err
    assert not (tmp_path / "r").exists()


def test_eval_with_neither_data_nor_audio_names_both_fixes(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "avatar"), "-o", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "--data DATA_DIR" in err and "--audio SPEECH_FILE" in err
    assert main(["eval", str(tmp_path / "avatar"), "-o", str(tmp_path / "r"), "--cross-audio", "a.wav"]) == 2
    assert "--cross-audio clips are extra rows beside the --audio run" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def _first_table(text: str) -> list[list[str]]:
    """The cells of the first markdown table in `text` (header, then rows; the separator line left out)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    block = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        block.append([cell.strip() for cell in line.strip("|").split("|")])
    return [block[0]] + block[2:]


def _footnote(text: str, cell: str) -> str:
    """The reason report.md gives for an 'n/a [k]' cell."""
    number = cell.split("[")[1].rstrip("]")
    return next(line for line in text.splitlines() if line.startswith(f"- [{number}] "))


PAPER_COLUMNS = ["", "PSNR ↑", "LPIPS ↓", "SSIM ↑", "FID ↓", "LMD ↓", "AUE ↓", "SyncScore ↑", "Diversity ↑", "EAR ↓"]


def test_report_md_opens_with_the_papers_table_1():
    from engine.eval.report import NO_TRUTH, UNAVAILABLE

    report = _report("/x/avatar", 30.0, 0.5)
    report["unavailable"] = {k: v for k, v in UNAVAILABLE.items() if k not in ("LPIPS", "FID")}
    report["reconstruction"].update(lpips=0.125, fid=20.5, lmd=1.5, pose_div_rendered=2.25, ear_error=0.0312,
                                    fid_frames=[200, 200], fid_run_frames=[675, 675], fid_max_frames=200)
    report["audio_driven"].update(psnr=None, psnr_unavailable=NO_TRUTH, fid=31.0, pose_div_rendered=0.75,
                                  fid_frames=[200, 200], fid_run_frames=[2250, 675], fid_max_frames=200)
    text = render_markdown(report)
    header, recon, driven = _first_table(text)
    assert header == PAPER_COLUMNS
    assert recon[:6] == ["reconstruction (true pose and expression)", "30", "0.125", "0.9", "20.5", "1.5"]
    assert recon[8:] == ["2.25", "0.0312"]
    assert "action-unit detector" in _footnote(text, recon[6]) and "SyncNet" in _footnote(text, recon[7])
    assert driven[0] == "audio-driven, one-shot (validation audio)" and driven[4] == "31" and driven[8] == "0.75"
    assert "no truth frames" in _footnote(text, driven[1])
    assert text.index("Table 1") < text.index("## Reconstruction") < text.index("## Audio-driven")
    note = next(line for line in text.splitlines() if line.startswith("FID: "))
    assert "at most 200 frames a side, evenly spaced over each run" in note
    assert "reconstruction: 200 of 675 frames against 200 of 675" in note
    assert "audio-driven: 200 of 2250 frames against 200 of 675" in note
    assert text.index(note) < text.index("## Reconstruction")
    report["audio_driven"].update(fid=None, fid_unavailable="skipped (--no-perceptual)")
    assert "audio-driven: 200" not in render_markdown(report)  # only measured FIDs are listed


def test_without_data_table_1_says_there_is_no_reconstruction():
    from engine.eval.report import NO_DATA

    report = _report("/x/avatar", 30.0, 0.5)
    report.update(data=None, dataset_checks=[], reconstruction={"unavailable": NO_DATA})
    text = render_markdown(report)
    header, recon, driven = _first_table(text)
    assert header == PAPER_COLUMNS
    assert all(cell.startswith("n/a [") for cell in recon[1:]) and len(set(recon[1:6])) == 1
    assert "--data DATA_DIR" in _footnote(text, recon[1])
    assert "No --data" in text and f"## Reconstruction\n\nNot run: {NO_DATA}." in text


def test_rendered_pose_diversity_shows_a_renderer_that_ignores_pose():
    from engine.eval.eval_config import EvalOptions
    from engine.eval.report import FaceTrack, audio_driven_metrics

    fps, rate, frames = 25.0, 16000, 50
    audio = 0.3 * np.sin(2 * np.pi * 250 * np.arange(2 * rate) / rate)
    sign = np.where(np.arange(frames) % 2, 1.0, -1.0)[:, None]
    commanded = 2.0 * sign * np.ones(3)
    motion = {"euler_deg": commanded, "trans": np.zeros((frames, 3)), "blendshapes": np.zeros((frames, 2)),
              "blendshape_names": np.array(["eyeBlinkLeft", "eyeBlinkRight"]), "time_s": np.arange(frames) / fps}
    landmarks = _landmarks(frames, np.full(frames, 5.0), closed=(10, 40))
    still = FaceTrack(landmarks, np.zeros((frames, 0)), [], np.tile([1.0, 170.0, -3.0], (frames, 1)))
    result, curves = audio_driven_metrics(EvalOptions(), motion, still, audio, rate, fps, None)
    assert result["head_motion"]["commanded"]["all"] == pytest.approx(2.0)
    assert result["pose_div_rendered"] == 0.0 and result["head_motion"]["rendered"]["all"] == 0.0
    assert result["pose_div_commanded"] == pytest.approx(2.0)
    np.testing.assert_array_equal(curves["rendered_euler"], still.euler_deg)
    seen = commanded + np.array([0.5, 170.0, 3.0])  # MediaPipe's camera sees the same motion from elsewhere
    seen[::7] = np.nan  # frames without a face are left out
    follows = FaceTrack(landmarks, np.zeros((frames, 0)), [], seen)
    result, _ = audio_driven_metrics(EvalOptions(), motion, follows, audio, rate, fps, None)
    assert result["pose_div_rendered"] == pytest.approx(2.0, abs=0.05)
    assert result["blinks"]["rendered"] == result["blinks_per_min"] == pytest.approx(60.0)  # EAR: 2 blinks in 2 s
    assert result["blinks"]["commanded"] == result["blinks_per_min_motion"] == 0.0
    no_face = FaceTrack(np.full((frames, 478, 2), np.nan), np.zeros((frames, 0)), [], np.full((frames, 3), np.nan))
    result, _ = audio_driven_metrics(EvalOptions(), motion, no_face, audio, rate, fps, None)
    assert result["pose_div_rendered"] is None and "fewer than half" in result["pose_div_rendered_unavailable"]


def test_pose_measured_on_frames_follows_the_face():
    """MediaPipe's pose on real pictures: an in-plane turn of the frame is a roll of the head, a still frame none."""
    from skimage.data import astronaut
    from skimage.transform import rotate

    from engine.eval.quality import resize
    from engine.eval.report import rendered_pose_diversity, track_faces

    face = resize(astronaut(), 256)
    angles = np.array([-10.0, -5.0, 0.0, 5.0, 10.0])
    turned = [rotate(face, a, preserve_range=True, mode="edge").astype(np.uint8) for a in angles]
    faces = track_faces(turned + [face] * 5, 25.0, None, "test", progress=False)
    assert faces.found.all()
    roll = faces.pose[:5, 0]
    np.testing.assert_allclose(roll - roll[2], angles, atol=2.5)  # skimage turns counter-clockwise: roll grows
    assert rendered_pose_diversity(faces.first(5))["all"] > 2.0
    static = faces.pose[5:]
    assert np.ptp(static, axis=0).max() < 0.1  # the same picture gives the same pose


@pytest.mark.slow
def test_report_end_to_end_on_a_tiny_avatar(tiny_avatar, tiny_data, tmp_path):
    """The report's plumbing; LPIPS and FID are skipped here (test_lpips_and_fid_end_to_end measures them)."""
    from engine.io.video import probe, write_wav

    out = tmp_path / "report"
    assert main(["eval", str(tiny_avatar), "--data", str(tiny_data), "-o", str(out), "--size", "32",
                 "--no-progress", "--no-perceptual"]) == 0
    report = json.loads((out / "report.json").read_text())
    for section, keys in REQUIRED.items():
        assert set(keys) <= set(report[section]), section
    assert {"SyncScore (LSE-C, LSE-D)", "AUE"} <= set(report["unavailable"])
    assert "--no-perceptual" in report["unavailable"]["LPIPS"] and "--no-perceptual" in report["unavailable"]["FID"]
    recon, driven = report["reconstruction"], report["audio_driven"]
    assert recon["frames"] == 6 and 12.0 < recon["psnr"] < 60.0 and 0.0 < recon["ssim"] <= 1.0
    assert recon["frames_with_hands"] == 0 and recon["psnr_without_hands"] == pytest.approx(recon["psnr"])
    # the procedural presenter's camera never re-exposes: each render carries an exposure of about 1
    assert 0.97 < recon["exposure_min"] <= recon["exposure_max"] < 1.03
    assert recon["psnr_without_exposure"] == pytest.approx(recon["psnr"], abs=0.5)
    assert "exposure, which training measured" in (out / "report.md").read_text()
    assert recon["lpips"] is None and recon["fid"] is None and "--no-perceptual" in recon["fid_unavailable"]
    # the validation audio's run is compared with the frames it belongs to
    assert 5.0 < driven["psnr"] < 60.0 and driven["lpips"] is None and driven["fid"] is None
    table1 = {row["run"]: row for row in report["table1"]}
    assert table1["reconstruction"]["values"]["PSNR"] == recon["psnr"]
    assert table1["audio_driven"]["values"]["PSNR"] == driven["psnr"]
    assert "--no-perceptual" in table1["reconstruction"]["missing"]["LPIPS"]
    assert "SyncNet" in table1["audio_driven"]["missing"]["SyncScore"]
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
    assert main(["eval", str(tiny_avatar), "--data", str(tiny_data), "-o", str(other), "--size", "32",
                 "--audio", str(tmp_path / "speech.wav"), "--mode", "zero-shot", "--no-progress",
                 "--no-perceptual"]) == 0
    driven = json.loads((other / "report.json").read_text())["audio_driven"]
    assert driven["mode"] == "zero-shot" and driven["frames"] == 50
    assert driven["speech_fraction"] == pytest.approx(30 / 50)  # 25 frames of tone + 5 of hangover
    assert "envelope" in driven["lip_sync_reference"] and "truth" not in driven
    assert driven["psnr"] is None and "no truth frames" in driven["psnr_unavailable"]
    assert driven["pose_div_speech"] > 0.0 and driven["pose_div_silence"] >= 0.0
    assert probe(other / "audio_driven.mp4").frames == 50


@pytest.mark.slow
def test_lpips_and_fid_end_to_end(tiny_avatar, tiny_data, eval_weights, tmp_path, monkeypatch):
    """The real networks on tiny_data's 6 validation frames and the run of their audio, FID capped at 4."""
    from engine.eval import quality

    monkeypatch.setattr(quality, "FID_MAX_FRAMES", 4)  # the cap at work on a run of 6 frames
    out = tmp_path / "report"
    assert main(["eval", str(tiny_avatar), "--data", str(tiny_data), "-o", str(out), "--size", "32",
                 "--no-progress", "--no-video"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert not {"LPIPS", "FID"} & set(report["unavailable"])
    recon, driven = report["reconstruction"], report["audio_driven"]
    for section in (recon, driven):
        assert 0.0 < section["lpips"] < 1.0 and section["fid"] > 0.0 and section["fid_frames"] == [4, 4]
        assert section["fid_run_frames"] == [6, 6] and section["fid_max_frames"] == 4
    assert 0.0 < recon["lpips_lips"] < 1.0 and recon["lpips_lip_frames"] == 6  # the tracks' lip boxes
    # the driven run's boxes come from MediaPipe on its frames, which finds no face on this 32 px presenter
    assert driven["lpips_lips"] is None and "no frame with the lips" in driven["lpips_lips_unavailable"]
    assert recon["fid_reference"] == driven["fid_reference"] == "the 6 validation frames"
    table1 = {row["run"]: row["values"] for row in report["table1"]}
    assert table1["reconstruction"]["LPIPS"] == recon["lpips"] and table1["audio_driven"]["FID"] == driven["fid"]
    text = (out / "report.md").read_text()
    assert "FID: Inception-v3 features of at most 4 frames a side, evenly spaced over each run (reconstruction: " \
           "4 of 6 frames against 4 of 6; audio-driven: 4 of 6 frames against 4 of 6)" in text


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
    from engine.eval.eval_config import EvalOptions
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
    result, curves = audio_driven_metrics(EvalOptions(), motion, faces, audio, rate, fps, truth)
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
    no_truth, _ = audio_driven_metrics(EvalOptions(), motion, faces, audio, rate, fps, None)
    assert no_truth["lip_sync_corr"] == no_truth["lip_sync_corr_envelope"] > 0.5


@pytest.mark.slow
def test_a_silent_recording_is_reconstructed_and_driven_only_by_given_speech(tiny_avatar, tiny_data, tmp_path):
    from engine.data.dataset import Dataset
    from engine.io.video import probe, write_wav

    data, avatar = tmp_path / "silent", tmp_path / "renderer_only"
    shutil.copytree(tiny_data, data)
    meta = json.loads((data / "meta.json").read_text())
    (data / "meta.json").write_text(json.dumps({**meta, "silent": True}))
    write_wav(data / "audio.wav", np.zeros(48 * 640, np.float32), 16000)
    avatar.mkdir()
    shutil.copy(tiny_avatar / "nerf.safetensors", avatar)  # no motion model: nothing is driven by audio
    assert Dataset(data).meta.silent
    out = tmp_path / "report"
    assert main(["eval", str(avatar), "--data", str(data), "-o", str(out), "--size", "32", "--no-progress",
                 "--no-perceptual"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["reconstruction"]["frames"] == 6 and report["reconstruction"]["psnr"] > 12.0
    assert "silent recording" in report["audio_driven"]["unavailable"]
    assert "pose_plot" not in report["files"] and not (out / "curves.npz").exists()
    markdown = (out / "report.md").read_text()
    assert "Not run:" in markdown and "| audio-driven (not run) |" in markdown
    video = probe(out / "sidebyside.mp4")
    assert (video.frames, video.width) == (6, 64) and not video.audio_duration_s
    write_wav(tmp_path / "speech.wav", 0.2 * np.sin(np.linspace(0, 900, 32000)), 16000)
    assert main(["eval", str(avatar), "--data", str(data), "-o", str(out), "--size", "32", "--no-progress",
                 "--audio", str(tmp_path / "speech.wav")]) == 2  # speech to drive, but no motion model to hear it


@pytest.mark.slow
def test_eval_without_data_drives_the_avatar_with_each_clip(tiny_avatar, tmp_path):
    from engine.io.video import write_wav

    rate = 16000
    t = np.arange(int(1.2 * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * 220 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
    clips = {"main.wav": np.where(t < 0.8, tone, 0.0), "all_speech.wav": tone, "short.wav": np.where(t < 0.4, tone, 0)}
    for name, samples in clips.items():
        write_wav(tmp_path / name, samples, rate)
    out = tmp_path / "report"
    assert main(["eval", str(tiny_avatar), "-o", str(out), "--audio", str(tmp_path / "main.wav"), "--size", "32",
                 "--cross-audio", str(tmp_path / "all_speech.wav"), str(tmp_path / "short.wav"), "--no-progress"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["data"] is None and "--data" in report["reconstruction"]["unavailable"]
    driven = report["audio_driven"]
    assert set(REQUIRED["audio_driven"]) <= set(driven) and driven["frames"] == 30
    assert set(driven["head_motion"]) >= {"commanded", "rendered"} and driven["head_motion"]["commanded"]["all"] > 0
    assert driven["blinks"]["commanded"] == driven["blinks_per_min_motion"]
    assert driven["fid"] is None and "no --data" in driven["fid_unavailable"]
    assert driven["lpips"] is None and "--data" in driven["lpips_unavailable"]
    rows = report["cross_audio"]
    assert [Path(row["audio"]).name for row in rows] == ["all_speech.wav", "short.wav"]
    assert rows[0]["speech_fraction"] > rows[1]["speech_fraction"]  # each row measured on its own clip
    assert all(row["frames"] == 30 and row["pose_div_commanded"] > 0 for row in rows)
    text = (out / "report.md").read_text()
    assert _first_table(text)[0] == PAPER_COLUMNS
    assert "## Reconstruction\n\nNot run: no --data" in text
    cross = text[text.index("## Cross-audio"):]
    names = [cells[0] for cells in _first_table(cross)[1:]]
    assert names == ["main.wav", "all_speech.wav", "short.wav"]
    for name in ("pose.png", "blinks.png", "mouth.png", "audio_driven.mp4", "curves.npz"):
        assert (out / name).stat().st_size > 0, name
    assert not (out / "sidebyside.mp4").exists() and not (out / "torso.png").exists()
