"""Window runner under a private Xvfb: the canvas it records, the overlay, keys, fullscreen."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from engine.app import Diagnostics
from engine.display.overlay import Overlay
from engine.display.settings import DisplaySettings
from engine.display.window import WindowState, import_glfw, key_action, run_window, status_lines
from engine.ecs import Stage
from engine.time import Time

# High fps: the loop's pacing would only slow the tests down.
FAST = {"fps": 1000.0, "vsync": False}


def test_key_actions():
    glfw = import_glfw()
    settings = DisplaySettings()
    assert key_action(glfw, settings, glfw.KEY_F1, glfw.PRESS) == "overlay"
    assert key_action(glfw, settings, glfw.KEY_F1, glfw.RELEASE) is None
    assert key_action(glfw, settings, glfw.KEY_F11, glfw.PRESS) == "fullscreen"
    assert key_action(glfw, settings, glfw.KEY_F12, glfw.PRESS) == "screenshot"
    assert key_action(glfw, settings, glfw.KEY_ESCAPE, glfw.PRESS) == "exit"
    assert key_action(glfw, settings, glfw.KEY_A, glfw.PRESS) is None
    assert key_action(glfw, DisplaySettings(overlay_key="TAB"), glfw.KEY_TAB, glfw.PRESS) == "overlay"
    assert key_action(glfw, DisplaySettings(kiosk=True), glfw.KEY_F1, glfw.PRESS) is None
    assert key_action(glfw, DisplaySettings(escape_exits=False), glfw.KEY_ESCAPE, glfw.PRESS) is None


@pytest.mark.window
def test_overlay_status_shows_each_voices_noise_gate():
    from engine.audio.features.mel import MelExtractor
    from engine.audio.plugin import AudioVoices
    from engine.audio.settings import GateParams
    from engine.audio.streaming import FeatureStream
    from engine.ecs import World

    world, voices = World(), AudioVoices()
    voices.streams["main"] = FeatureStream(MelExtractor(), gate=GateParams())
    voices.streams["guest"] = FeatureStream(MelExtractor(), gate=GateParams(enabled=False))
    world.insert_resource(voices)
    noise = np.random.default_rng(0).standard_normal(32000).astype(np.float32) * 10 ** (-50 / 20)
    voices.streams["main"].push(noise)  # 2 s of room noise at -50 dBFS: the gate has found it and closed
    (line,) = status_lines(world)
    assert line.startswith("noise gate main: floor -5") and "dBFS, -2" in line and line.endswith(" dB")


def test_window_draws_the_frame_and_the_overlay(xvfb_display, frame_app, card):
    settings = DisplaySettings(size=(256, 256), window_size=(400, 300), background_color=(0.2, 0.4, 0.6), **FAST)
    runner = frame_app(settings, card)
    result = run_window(runner.app, frames=6)
    assert result.frames == 6 and result.exit_reason == "frame budget reached"
    canvas = runner.canvases[-1]
    assert tuple(canvas[10, 128]) == (51, 102, 153, 255)  # letterbox bar
    assert tuple(canvas[66, 40]) == (255, 255, 0, 255)
    assert tuple(canvas[150, 40]) == (255, 0, 0, 255)
    assert tuple(canvas[150, 220]) == (0, 0, 255, 255)
    overlay = runner.app.world.resource(Overlay)
    assert overlay.visible and overlay.frames_drawn == 6 and overlay.last_vertex_count > 0
    assert runner.app.world.resource(Diagnostics).errors == {}  # no GL error after overlay frames


@pytest.mark.window
def test_overlay_never_reaches_the_canvas(xvfb_display, frame_app, card):
    canvases = {}
    for visible in (True, False):
        runner = frame_app(DisplaySettings(size=(128, 64), overlay=visible, **FAST), card)
        run_window(runner.app, frames=3)
        assert runner.app.world.resource(Overlay).frames_drawn == (3 if visible else 0)
        canvases[visible] = runner.canvases[-1]
    np.testing.assert_array_equal(canvases[True], canvases[False])
    np.testing.assert_array_equal(canvases[True], card)


@pytest.mark.window
def test_key_actions_toggle_overlay_fullscreen_screenshot_and_exit(xvfb_display, frame_app, card, tmp_path):
    glfw = import_glfw()
    settings = DisplaySettings(size=(64, 64), window_size=(320, 240), screenshot_dir=tmp_path, **FAST)
    runner = frame_app(settings, card)
    sizes = {}

    def script(world):
        state, frame = world.resource(WindowState), world.resource(Time).frame
        sizes[frame] = glfw.get_window_size(state.window)
        if frame == 1:
            state.actions += ["overlay", "fullscreen", "screenshot"]
        if frame == 4:
            sizes["cursor"] = glfw.get_input_mode(state.window, glfw.CURSOR)
            state.actions.append("fullscreen")
        if frame == 7:
            state.actions.append("exit")

    runner.app.add_system(script, Stage.UPDATE, name="test.script")
    result = run_window(runner.app, frames=50)
    assert result.exit_reason == "Esc pressed" and result.frames == 9
    assert sizes[1] == (320, 240)
    assert sizes[4] == (1024, 768)  # the Xvfb screen
    assert sizes["cursor"] == glfw.CURSOR_HIDDEN
    assert sizes[7] == (320, 240)
    overlay = runner.app.world.resource(Overlay)
    assert not overlay.visible and overlay.frames_drawn == 2
    shots = list(tmp_path.glob("screenshot-*.png"))
    assert len(shots) == 1 and shots[0] in result.outputs


@pytest.mark.window
@pytest.mark.skipif(shutil.which("xdotool") is None, reason="xdotool is not installed (apt-get install xdotool)")
def test_real_key_press_reaches_the_runner_through_imgui(xvfb_display, frame_app, card):
    runner = frame_app(DisplaySettings(size=(64, 64), title="keytest", **FAST), card)
    pressed = []

    def press_f1(world):
        if world.resource(Time).frame == 2:
            subprocess.run(["xdotool", "search", "--name", "keytest", "windowfocus", "--sync", "key", "F1"],
                           check=True, timeout=10)
        if world.resource(Time).frame > 2 and not world.resource(Overlay).visible:
            pressed.append(world.resource(Time).frame)
            runner.app.request_exit("saw F1")

    runner.app.add_system(press_f1, Stage.UPDATE, name="test.press_f1")
    result = run_window(runner.app, frames=200)
    assert result.exit_reason == "saw F1", "F1 never toggled the overlay"


@pytest.mark.window
def test_kiosk_starts_fullscreen_without_overlay_on_the_wall_clock(xvfb_display, frame_app, card):
    glfw = import_glfw()
    runner = frame_app(DisplaySettings(size=(64, 64), kiosk=True, **FAST), card)
    seen = {}

    def look(world):
        state = world.resource(WindowState)
        seen["size"] = glfw.get_window_size(state.window)
        seen["cursor"] = glfw.get_input_mode(state.window, glfw.CURSOR)

    runner.app.add_system(look, Stage.UPDATE, name="test.look")
    result = run_window(runner.app, frames=3)
    assert seen == {"size": (1024, 768), "cursor": glfw.CURSOR_HIDDEN}
    assert runner.app.world.resource(Overlay).frames_drawn == 0
    from engine.time import MasterClock

    assert runner.app.world.resource(MasterClock).describe == "wall"
    assert result.seconds > 0


@pytest.mark.window
def test_window_after_a_headless_run_in_the_same_process(xvfb_display, frame_app, card):
    from engine.display.headless import run_headless

    headless = frame_app(DisplaySettings(size=(128, 64)), card)
    run_headless(headless.app, frames=1)
    windowed = frame_app(DisplaySettings(size=(128, 64), **FAST), card)
    run_window(windowed.app, frames=1)  # used to die in glXMakeCurrent (BadAccess) after EGL
    np.testing.assert_array_equal(windowed.canvases[-1], headless.canvases[-1])


def test_no_display_is_a_clear_error(monkeypatch, frame_app, card):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    runner = frame_app(DisplaySettings(size=(16, 16)), card)
    with pytest.warns(Warning):  # pyglfw also reports the X11 failure as a GLFWError warning
        with pytest.raises(RuntimeError, match="--headless"):
            run_window(runner.app, frames=1)
