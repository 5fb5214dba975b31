"""The bundled scenes: the kiosk idles and speaks what the control socket sends; avatar scenes say what is missing."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from scene_helpers import constant

from engine.app import Diagnostics
from engine.audio.playback import AudioPlayback
from engine.components import ActiveRenderer, FrameImage
from engine.run import RunOptions, assemble_scene
from engine.scene import SCENES_DIR
from engine.scene.api import Scene
from engine.scene.client import ControlClient, wav_bytes
from engine.scene.control import ControlServer
from engine.scene.control_settings import ControlSettings
from engine.scene.host import host_scene
from engine.scene.loader import SceneError, build_scene

TOKEN = "kiosk-token-1"


@pytest.fixture(autouse=True)
def without_the_bundled_avatar(monkeypatch, tmp_path):
    """The kiosk tests exercise the captions-only kiosk whether or not assets/avatar has been trained."""
    monkeypatch.setenv("SYNCANIM_AVATAR", str(tmp_path / "no_avatar"))


def caption_pixels(app) -> int:
    """Bright pixels in the bottom quarter of the frame (caption letters on the dark kiosk background)."""
    rgba = app.resource(FrameImage).rgba
    return int((rgba[rgba.shape[0] * 3 // 4:, :, :3].mean(axis=-1) > 150).sum())


def test_the_kiosk_idles_then_speaks_and_captions_what_it_is_sent(app):
    app.insert_resource(ControlSettings(control="127.0.0.1:0", control_token=TOKEN))
    host_scene(app, SCENES_DIR / "kiosk.py")
    for _ in range(10):
        app.update()
    assert caption_pixels(app) == 0  # idle: background only, yet every frame is composed
    assert app.resource(FrameImage).frame == 9
    assert any("kiosk without an avatar" in n and "syncanim train" in n for n in app.resource(Diagnostics).notices)
    with ControlClient(f"127.0.0.1:{app.resource(ControlServer).address[1]}", token=TOKEN) as client:
        client.say(wav_bytes(constant(0.6, 0.2)), text="Welcome to the museum")
        shown = []
        for _ in range(25):
            app.update()
            shown.append(caption_pixels(app))
        assert max(shown) > 30 and shown[-1] == 0  # shown while heard, gone after
        client.cue("caption", "Opening hours: 9 to 5")
        app.update()
        app.update()
        assert caption_pixels(app) > 30


@pytest.mark.parametrize("scene", ["framing_tour.py", "two_presenters.py"])
def test_avatar_scenes_say_how_to_make_the_avatar_they_need(app, scene, tmp_path, monkeypatch):
    for name in ("SYNCANIM_AVATAR", "SYNCANIM_AVATAR_LEFT", "SYNCANIM_AVATAR_RIGHT"):
        monkeypatch.setenv(name, str(tmp_path / "no_avatar"))
    with pytest.raises(SceneError, match=r"no_avatar does not exist; make one with .*syncanim train"):
        build_scene(app, SCENES_DIR / scene)


def test_an_avatar_folder_needs_both_trained_models_and_brings_the_renderer(app, tmp_path):
    from engine.components import Avatar, Framing
    from engine.motion.components import MotionController
    from engine.scene.api import Scene
    from engine.scene.components import ScreenRect

    folder = tmp_path / "avatar"
    folder.mkdir()
    (folder / "motion.safetensors").write_bytes(b"")
    with pytest.raises(SceneError, match=r"nerf.safetensors is missing\); make one with .*syncanim train"):
        Scene(app).avatar(folder)
    (folder / "nerf.safetensors").write_bytes(b"")  # models load at startup; spawning only checks the files
    with pytest.raises(SceneError, match=r"no voice 'left'; the engine's voices are \['main'\]"):
        Scene(app).avatar(folder, voice="left")
    assert app.world.resource(ActiveRenderer).name == "nerf"  # the renderer's plugin came with the first avatar
    name = Scene(app).avatar(folder, name="anna", mode="zero-shot", framing="max", rect=(0.5, 0.0, 0.5, 1.0))
    ((entity, avatar),) = app.world.query(Avatar)
    assert name == avatar.name == "anna"
    assert app.world.get(entity, MotionController).mode == "zero_shot"
    assert app.world.get(entity, Framing).zoom == 1.0 and app.world.get(entity, ScreenRect).x == 0.5
    with pytest.raises(SceneError, match="already exists"):
        Scene(app).avatar(folder, name="anna")


def test_a_scene_declares_its_voices_before_the_engine_builds_them_once(app):
    from engine.audio.plugin import AudioVoices
    from engine.audio.settings import AudioSettings

    scene = Scene(app)
    with pytest.raises(SceneError, match="distinct non-empty names"):
        scene.voices("a", "a")
    assert scene.voices("left", "right") == ("left", "right")
    assert not app.world.has_resource(AudioVoices)  # nothing built before start-up ...
    app.update()
    assert set(app.world.resource(AudioVoices).samples) == {"left", "right"}  # ... then built from the declaration
    assert scene.voices("left", "right") == ("left", "right")  # a reload that keeps them is fine
    with pytest.raises(SceneError, match="restart it to change them"):
        scene.voices("main")
    assert app.world.resource(AudioSettings).voices == ("left", "right")


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (apt install espeak-ng)")
def test_the_two_presenters_scene_speaks_on_two_voices():
    from engine.audio.settings import AudioSettings

    app = assemble_scene(RunOptions(scene=SCENES_DIR / "two_presenters.py", headless=True, watch=False))
    try:
        assert app.world.resource(AudioSettings).voices == ("left", "right")
    finally:
        app.shutdown()


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (apt install espeak-ng)")
def test_say_espeak_pipes_speech_into_a_running_kiosk(app):
    app.insert_resource(ControlSettings(control="127.0.0.1:0", control_token=TOKEN))
    host_scene(app, SCENES_DIR / "kiosk.py")
    app.update()
    port = app.resource(ControlServer).address[1]
    result = subprocess.run(
        [sys.executable, str(SCENES_DIR.parent / "scripts" / "say_espeak.py"), "-", "--control", f"127.0.0.1:{port}"],
        input="Good morning.\n\nThe museum opens at nine.\n", capture_output=True, text=True, timeout=60,
        env={**os.environ, "SYNCANIM_CONTROL_TOKEN": TOKEN},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("sent ") == 2 and "The museum opens at nine." in result.stdout
    app.update()
    playback = app.resource(AudioPlayback)
    status = app.resource(ControlServer).status()
    assert playback.busy and status["speaking"] == {"main": True} and status["scripts"] == ["show_cued_captions"]
    captioned = 0
    for _ in range(100):
        app.update()
        captioned += caption_pixels(app) > 30
    assert captioned > 25  # both lines (about 2.5 s) were captioned while heard


@pytest.mark.slow
def test_a_kiosk_fed_by_the_control_socket_keeps_its_memory_flat(app):
    """Bounded by design (queues, caches, event logs): after warm-up, 500 frames with speech, captions, cues and
    status requests every second allocate nothing that stays (one frame buffer of 77 kB is the unit)."""
    import gc
    import tracemalloc

    app.insert_resource(ControlSettings(control="127.0.0.1:0", control_token=TOKEN))
    host_scene(app, SCENES_DIR / "kiosk.py")
    app.update()
    speech = wav_bytes(constant(0.5, 0.2))
    with ControlClient(f"127.0.0.1:{app.resource(ControlServer).address[1]}", token=TOKEN) as client:
        def run(frames):
            for i in range(frames):
                if i % 25 == 0:
                    client.say(speech, text=f"line {i}", interrupt=i % 100 == 0)
                    client.cue("caption", f"cue {i}")
                    client.status()
                app.update()

        run(200)
        gc.collect()
        tracemalloc.start()
        try:
            run(100)
            gc.collect()
            before = tracemalloc.get_traced_memory()[0]
            run(500)
            gc.collect()
            after = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
    assert after - before < 256 * 1024
    assert not app.resource(Diagnostics).errors
