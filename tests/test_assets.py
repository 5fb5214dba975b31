"""The bundled demo avatar and audio: present, within the size budget, loadable and alive."""
from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

ASSETS = Path(__file__).resolve().parents[1] / "assets"
AVATAR = ASSETS / "avatar"
CLIPS = sorted((ASSETS / "audio").glob("*.wav"))


def test_the_bundled_assets_fit_the_size_budget():
    total = sum(path.stat().st_size for path in ASSETS.rglob("*") if path.is_file())
    assert total < 30 * 2**20, f"assets/ holds {total / 2**20:.1f} MB; the budget is about 30 MB"


def test_demo_clips_are_16_khz_mono_speech_with_silences():
    from engine.audio.activity import speech_mask

    assert len(CLIPS) >= 3
    for path in CLIPS:
        with wave.open(str(path)) as handle:
            assert (handle.getframerate(), handle.getnchannels(), handle.getsampwidth()) == (16000, 1, 2), path
            samples = np.frombuffer(handle.readframes(handle.getnframes()), np.int16) / 32768.0
        speech = speech_mask(samples, 16000, 25.0)
        assert 0.3 < speech.mean() < 0.9, f"{path.name}: {speech.mean():.0%} speech"


@pytest.mark.slow
def test_the_bundled_avatar_renders_and_moves(tmp_path):
    import torch

    from engine.motion.predict import predict_motion
    from engine.nerf.kernels.runtime import init_taichi
    from engine.nerf.render import AvatarRenderer

    motion = predict_motion(AVATAR, CLIPS[0], mode="zero_shot", seed=1)
    assert np.isfinite(motion["euler_deg"]).all() and motion["euler_deg"].std(0).max() > 0.1  # the head moves
    init_taichi("cpu")
    renderer = AvatarRenderer.load(AVATAR, "cpu")
    k = len(motion["euler_deg"]) // 2
    rgba = renderer.render(motion["euler_deg"][k], motion["trans"][k], motion["blendshapes"][k],
                           list(motion["blendshape_names"]), size=(64, 64), zoom="med")
    assert rgba.shape == (64, 64, 4) and torch.isfinite(rgba).all()
    assert rgba[..., :3].std() > 0.05  # a picture, not a flat colour


@pytest.mark.parametrize("name", ["report/report.json", "report/report.md", "nerf_log.jsonl", "motion_log.jsonl"])
def test_the_bundled_avatar_ships_its_provenance(name):
    assert (AVATAR / name).is_file(), f"assets/avatar/{name} is missing; scripts/make_demo_avatar.sh writes it"


@pytest.mark.slow
def test_bench_times_whole_frames_of_the_bundled_avatar_speaking(tmp_path):
    import json

    from engine.cli import main

    out = tmp_path / "bench.json"
    assert main(["bench", "--avatar", str(AVATAR), "--sizes", "48", "--seconds", "0.8", "--warmup-window-s", "0.1",
                 "--no-hubert", "--no-kernels", "--no-render", "--no-conversation", "--audio-seconds", "1", "--json",
                 str(out)]) == 0
    report = json.loads(out.read_text())
    assert "reading the bundled clips" in report["scene"] and report["avatar"] == str(AVATAR)
    (result,) = report["results"]  # head_scale 1 and 'auto' are the same at 48x48: one row
    assert result["frames"] == 20 and result["parts_ms"]["render"]["mean"] > 0
    assert result["renderer"]["asked"] == ["1", "auto"] and result["renderer"]["head_rays"] == [48, 48]
