"""`syncanim demo` and scenes/demo.py: the avatar reads the clips with captions and gentle framing changes; with the
avatar, the clips or the microphone missing it runs anyway (or stops at once) and says what to run."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from scene_helpers import make_app

from engine.app import AppExit, Diagnostics
from engine.cli import main
from engine.components import FrameImage, Framing
from engine.display.compose import caption_visible
from engine.io.video import probe, write_wav
from engine.scene import SCENES_DIR
from engine.scene.components import Captions
from engine.scene.host import host_scene
from engine.scene.loader import SceneArgs
from engine.time import Time

ROOT = SCENES_DIR.parent
DEMO = SCENES_DIR / "demo.py"


def tone(seconds: float, hz: float = 220.0, rate: int = 16000) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


@pytest.fixture
def clips(tmp_path) -> Path:
    """Two short clips with their captions: the first has two sentences (a pause between), the second one."""
    folder = tmp_path / "clips"
    folder.mkdir()
    write_wav(folder / "01_a.wav", np.concatenate([tone(0.4), np.zeros(8000, np.float32), tone(0.3)]), 16000)
    (folder / "01_a.txt").write_text("First sentence.\nSecond sentence.\n")
    write_wav(folder / "02_b.wav", tone(0.4, 330.0), 16000)
    (folder / "02_b.txt").write_text("The second clip.\n")
    return folder


def test_the_demo_reads_its_clips_with_captions_and_changes_framing_between_them(tiny_avatar, clips):
    app = make_app(size=(64, 48), strict=False)
    app.insert_resource(SceneArgs(DEMO, audio=clips, avatar=tiny_avatar))
    host_scene(app, DEMO)
    shown, zooms, frames = [], [], []
    for _ in range(400):
        app.update()
        main_caption = app.resource(Captions).slots.get("main")
        now = app.resource(Time).elapsed
        shown.append(main_caption.text if main_caption and caption_visible(main_caption, now) else "")
        zooms.append(next(f.zoom for _, f in app.world.query(Framing)))
        frames.append(app.resource(FrameImage).rgba.copy())
        if app.world.messages(AppExit).read("test"):
            break
    else:
        raise AssertionError("the demo did not end")
    assert not app.resource(Diagnostics).errors
    assert not any("without" in notice for notice in app.resource(Diagnostics).notices)  # nothing missing
    # Captions in order, each shown while its sentence is heard (the clip's pause splits the first clip in two).
    order = [text for i, text in enumerate(shown) if text and (i == 0 or shown[i - 1] != text)]
    assert order == ["First sentence.", "Second sentence.", "The second clip."]
    # The framing eased (no jump) from the default to MedScale between the clips, after the first one.
    while_first_clip = shown.index("Second sentence.")
    assert zooms[while_first_clip] == 0.0 and zooms[-1] == pytest.approx(0.5)
    assert max(np.abs(np.diff(zooms))) < 0.1
    # The avatar is drawn: the frame is not just the background.
    background = frames[0][0, 0]
    assert max((np.abs(f.astype(int) - background).sum(-1) > 60).mean() for f in frames) > 0.2
    # It ended by itself, about when the clips and pauses add up (0.6 + 1.2 + 0.8 + 0.4 + 1.0 s + the delay).
    assert 4.0 <= app.resource(Time).elapsed <= 5.5


def test_syncanim_demo_headless_records_the_avatar_with_its_sound(tiny_avatar, clips, tmp_path, capsys):
    out = tmp_path / "demo.mp4"
    code = main(["demo", "--headless", "--out", str(out), "--avatar", str(tiny_avatar), "--audio", str(clips),
                 "--size", "64x48", "--seconds", "2"])
    assert code == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed  # says where it wrote
    info = probe(out)
    assert info.frames == 50 and (info.width, info.height) == (64, 48)
    assert info.audio_duration_s == pytest.approx(2.0, abs=0.07)
    import av

    with av.open(str(out)) as container:
        audio = np.concatenate([f.to_ndarray().ravel() for f in container.decode(audio=0)])
    assert np.abs(audio).max() > 0.1  # the first clip is heard


@pytest.mark.slow
def test_the_demo_without_its_assets_runs_and_says_what_to_run(tmp_path, caplog):
    out = tmp_path / "demo.mp4"
    empty = tmp_path / "no_clips"
    empty.mkdir()
    with caplog.at_level(logging.INFO):
        code = main(["demo", "--headless", "--out", str(out), "--avatar", str(tmp_path / "no_avatar"),
                     "--audio", str(empty), "--size", "96x64"])
    assert code == 0
    log = caplog.text
    assert "demo without an avatar" in log and "syncanim train" in log and "--avatar AVATAR_DIR" in log
    assert "demo without audio" in log and "make_demo_audio.sh" in log and "--audio" in log
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("demo without an avatar" in m for m in warned) and any("demo without audio" in m for m in warned)
    info = probe(out)
    assert info.frames == pytest.approx(150, abs=1)  # the notice for NOTICE_S = 6 s, then it ends by itself
    import imageio.v3 as iio

    frame = iio.imread(out, index=10, plugin="pyav")
    top = frame[: frame.shape[0] // 3].mean(axis=-1)
    assert (top > 150).sum() > 30  # the notice is drawn on the frame, so the recording shows it


def test_demo_mic_with_no_microphone_stops_at_once_naming_the_fix(monkeypatch, tmp_path, capsys):
    import engine.audio.devices as devices

    monkeypatch.setattr(devices, "list_devices", lambda pa, kind: [])
    code = main(["demo", "--mic", "--headless", "--out", str(tmp_path / "mic.mp4"), "--seconds", "1"])
    error = capsys.readouterr().err
    assert code == 2
    assert "--mic: no audio input device" in error and "--mic-device" in error and "leave out --mic" in error
    assert not (tmp_path / "mic.mp4").exists()


@pytest.mark.slow
def test_demo_mic_listens_to_the_default_microphone(tmp_path):
    """Through pyaudio and ALSA's file plugin as the default device (a fresh interpreter reads the .asoundrc)."""
    infile = tmp_path / "in.raw"
    (0.5 * 32767 * tone(10.0)).astype("<i2").tofile(infile)
    home = tmp_path / "home"
    home.mkdir()
    (home / ".asoundrc").write_text(textwrap.dedent(f"""\
        pcm.!default {{ type plug  slave {{ pcm "capture_file" format S16_LE rate 16000 channels 1 }} }}
        pcm.capture_file {{ type file  slave.pcm "null"  file "{tmp_path / 'out.raw'}"  infile "{infile}"
                            format "raw" }}
        """))
    out = tmp_path / "mic.mp4"
    result = subprocess.run(
        [sys.executable, "-m", "engine", "demo", "--mic", "--headless", "--out", str(out), "--seconds", "1",
         "--size", "64x48", "--avatar", str(tmp_path / "none")],
        env={**os.environ, "HOME": str(home), "PYTHONPATH": str(ROOT)}, cwd=ROOT, capture_output=True, text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "audio: listening on 'default'" in result.stderr
    info = probe(out)
    assert info.frames == pytest.approx(25, abs=1)  # a microphone run follows the wall clock (--realtime)


def test_the_demo_canvas_defaults_to_what_the_machine_renders_in_real_time():
    import torch

    from engine.run import DemoOptions, demo_run_options

    assert demo_run_options(DemoOptions(headless=True)).display.size == (512, 512)  # a recording takes its time
    window = demo_run_options(DemoOptions(window=True)).display
    assert window.size == ((512, 512) if torch.cuda.is_available() else (256, 256))
    assert window.window_size == (512, 512)
    assert demo_run_options(DemoOptions(window=True, size=(320, 240))).display.size == (320, 240)


@pytest.mark.parametrize(("display", "flags", "headless"), [
    (None, [], True), (":1", [], False), (":1", ["--headless"], True), (None, ["--window"], False),
    (":1", ["--headless", "--window"], True),
])
def test_the_demo_records_without_a_display_unless_told_otherwise(monkeypatch, display, flags, headless):
    import tyro

    from engine.run import DemoOptions, demo_run_options

    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if display is None:
        monkeypatch.delenv("DISPLAY", raising=False)
    else:
        monkeypatch.setenv("DISPLAY", display)
    run = demo_run_options(tyro.cli(DemoOptions, args=flags))  # plain flags: `syncanim demo --headless`
    assert run.headless is headless and (run.display.out is not None) is headless
