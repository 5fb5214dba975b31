"""Window runner: glfw + moderngl window showing the canvas letterboxed, with the imgui overlay on top.

Frames are composed into the same offscreen canvas as headless runs (what sinks record); the window
shows that canvas scaled to its size, and only the window gets the overlay.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.app import Diagnostics, SystemTimings
from engine.audio.plugin import AudioVoices
from engine.display.headless import RunResult, finish_run, frame_budget
from engine.display.overlay import Overlay, draw_overlay, let_imgui_set_cursor, start_imgui, stop_imgui
from engine.display.plugin import display_plugin, follow_scene_background
from engine.display.present import Presenter
from engine.display.settings import DisplaySettings
from engine.display.sinks import Mp4Sink, ScreenshotRequests, VirtualCamera
from engine.display.target import GLTarget, create_target
from engine.time import Time

if TYPE_CHECKING:
    from engine.app import App


NO_DISPLAY_HINT = (
    "cannot open a window: no display found (is DISPLAY set?). Use `--headless` (offscreen, e.g. with "
    "--out take.mp4) or run under `xvfb-run -a`"
)


def import_glfw() -> Any:
    """glfw, imported after imgui_bundle so both use imgui_bundle's libglfw (one GLFW in the process)."""
    from imgui_bundle import imgui  # noqa: F401  (import order matters, see docstring)
    import glfw

    return glfw


@dataclass
class WindowState:
    """Resource of the window runner: the glfw window and the actions its keys asked for."""

    window: Any = None
    """The glfw window handle."""
    fullscreen: bool = False
    windowed_rect: tuple[int, int, int, int] = (0, 0, 512, 512)
    """(x, y, width, height) to return to when leaving fullscreen."""
    actions: list[str] = field(default_factory=list)
    """Pending key actions: 'overlay', 'fullscreen', 'screenshot', 'exit'."""


def key_action(glfw: Any, settings: DisplaySettings, key: int, action: int) -> str | None:
    """Which runner action a key press means (None for keys the runner leaves to imgui and scenes)."""
    if action != glfw.PRESS:
        return None
    overlay_keys = {"F1": glfw.KEY_F1, "F2": glfw.KEY_F2, "F3": glfw.KEY_F3, "F4": glfw.KEY_F4,
                    "TAB": glfw.KEY_TAB, "GRAVE": glfw.KEY_GRAVE_ACCENT}
    if key == overlay_keys[settings.overlay_key.upper()] and not settings.kiosk:
        return "overlay"
    if key == glfw.KEY_F11:
        return "fullscreen"
    if key == glfw.KEY_F12:
        return "screenshot"
    if key == glfw.KEY_ESCAPE and settings.escape_exits:
        return "exit"
    return None


def create_window(glfw: Any, settings: DisplaySettings) -> Any:
    """A 3.3 core, forward-compatible GL window with the stable title, current on this thread."""
    glfw.default_window_hints()
    glfw.window_hint(glfw.CONTEXT_VERSION_MAJOR, 3)
    glfw.window_hint(glfw.CONTEXT_VERSION_MINOR, 3)
    glfw.window_hint(glfw.OPENGL_PROFILE, glfw.OPENGL_CORE_PROFILE)
    glfw.window_hint(glfw.OPENGL_FORWARD_COMPAT, True)
    glfw.window_hint(glfw.RESIZABLE, settings.resizable)
    glfw.window_hint(glfw.DECORATED, settings.decorated)
    glfw.window_hint(glfw.FLOATING, settings.always_on_top)
    glfw.window_hint(glfw.TRANSPARENT_FRAMEBUFFER, settings.background == "transparent")
    width, height = settings.window_size or settings.size
    window = glfw.create_window(int(width), int(height), settings.title, None, None)
    if not window:
        raise RuntimeError(f"glfw could not create a {width}x{height} OpenGL 3.3 core window; {NO_DISPLAY_HINT}")
    if settings.window_position is not None:
        glfw.set_window_pos(window, *settings.window_position)
    glfw.make_context_current(window)
    glfw.swap_interval(1 if settings.vsync else 0)
    return window


def set_fullscreen(glfw: Any, state: WindowState, settings: DisplaySettings, on: bool) -> None:
    """Enter (cursor hidden) or leave fullscreen on settings.monitor."""
    window = state.window
    if on == state.fullscreen:
        return
    if on:
        monitors = glfw.get_monitors() or [glfw.get_primary_monitor()]
        monitor = monitors[min(settings.monitor, len(monitors) - 1)]
        mode = glfw.get_video_mode(monitor)
        state.windowed_rect = (*glfw.get_window_pos(window), *glfw.get_window_size(window))
        glfw.set_window_monitor(window, monitor, 0, 0, mode.size.width, mode.size.height, mode.refresh_rate)
        glfw.set_input_mode(window, glfw.CURSOR, glfw.CURSOR_HIDDEN)
        let_imgui_set_cursor(False)
    else:
        x, y, width, height = state.windowed_rect
        glfw.set_window_monitor(window, None, x, y, width, height, 0)
        glfw.set_input_mode(window, glfw.CURSOR, glfw.CURSOR_NORMAL)
        let_imgui_set_cursor(True)
    glfw.swap_interval(1 if settings.vsync else 0)  # some drivers reset it on a mode change
    state.fullscreen = on


def apply_actions(glfw: Any, app: App, state: WindowState, overlay: Overlay, settings: DisplaySettings) -> None:
    actions, state.actions = state.actions, []
    for action in actions:
        if action == "overlay":
            overlay.visible = not overlay.visible
        elif action == "fullscreen":
            set_fullscreen(glfw, state, settings, not state.fullscreen)
        elif action == "screenshot":
            app.world.resource(ScreenshotRequests).pending.append(None)
        elif action == "exit":
            app.request_exit("Esc pressed")


def status_lines(world: Any) -> list[str]:
    """Noise gates, upload path, recording and virtual-camera state for the overlay."""
    lines = []
    voices = world.get_resource(AudioVoices)
    for name, stream in (voices.streams.items() if voices is not None else ()):
        if stream.gate is not None:
            gate = stream.gate
            state = "open" if gate.gate_db > -1.0 else f"{gate.gate_db:.0f} dB"
            lines.append(f"noise gate {name}: floor {gate.floor_dbfs:.0f} dBFS, {state}, level {gate.level_db:+.0f} dB")
    presenter = world.get_resource(Presenter)
    if presenter is not None:
        upload = presenter.upload
        line = f"upload: {upload.path}"
        if upload.fallback_reason:
            line += f" (interop off: {upload.fallback_reason[:80]})"
        lines.append(line)
    sink = world.get_resource(Mp4Sink)
    if sink is not None:
        lines.append(f"recording {sink.path.name}: {sink.frames} frames")
    vcam = world.get_resource(VirtualCamera)
    if vcam is not None:
        lines.append(f"virtual camera: {vcam.device} ({vcam.frames_sent} sent)" if vcam.available else vcam.reason)
    return lines


def draw_window(glfw: Any, app: App, state: WindowState, overlay: Overlay) -> None:
    """Show the canvas letterboxed in the window, then the overlay (window only)."""
    world = app.world
    width, height = glfw.get_framebuffer_size(state.window)
    if width == 0 or height == 0:
        return  # minimised
    target = world.resource(GLTarget)
    presenter = world.get_resource(Presenter)
    if presenter is None:
        presenter = Presenter(target.ctx)
        world.insert_resource(presenter)
    settings = world.resource(DisplaySettings)
    screen = target.ctx.screen
    # A transparent window is composited by the window manager, which expects premultiplied alpha.
    presenter.draw(
        target.color, screen, settings, flip_y=False, keep_alpha=True, size=(width, height),
        premultiply=settings.background == "transparent",
    )
    canvas_w, canvas_h = target.size
    overlay.status_lines = [f"canvas {canvas_w}x{canvas_h} in window {width}x{height}", *status_lines(world)]
    draw_overlay(world, overlay)
    error = target.ctx.error
    if error != "GL_NO_ERROR":
        world.resource(Diagnostics).report("display.window", RuntimeError(f"OpenGL error after drawing: {error}"))


class Pacer:
    """Sleeps so the loop runs at most `fps` frames per second; after a stall it restarts the schedule."""

    def __init__(self, fps: float) -> None:
        self.period = 1.0 / fps
        self.deadline: float | None = None

    def wait(self) -> None:
        now = time.perf_counter()
        self.deadline = now if self.deadline is None else self.deadline + self.period
        if self.deadline > now:
            time.sleep(self.deadline - now)
        elif now - self.deadline > self.period:
            self.deadline = now


def run_window(app: App, seconds: float | None = None, frames: int | None = None) -> RunResult:
    """Run `app` in a window until it is closed, Esc, an exit request, or `seconds` of clock time / `frames`.

    The clock stays as the app has it: 'wall' unless the audio plugin slaved it to playback.
    Keys: overlay key (F1 by default), F11 fullscreen, F12 screenshot, Esc exit.
    """
    app.add_plugin(display_plugin)
    follow_scene_background(app.world)  # before the window or canvas is made of the settings
    settings = app.world.resource(DisplaySettings)
    budget = frame_budget(settings.fps, None, frames)
    glfw = import_glfw()
    if not glfw.init():
        raise RuntimeError(NO_DISPLAY_HINT)
    state = WindowState()
    target = None
    imgui_started = False
    try:
        state.window = create_window(glfw, settings)
        import moderngl

        ctx = moderngl.create_context(require=330)
        target = create_target(ctx, settings.size, runner="window")
        app.world.insert_resource(target)
        app.world.insert_resource(state)

        def on_key(_window: Any, key: int, _scancode: int, action: int, _mods: int) -> None:
            chosen = key_action(glfw, settings, key, action)
            if chosen:
                state.actions.append(chosen)

        # Installed before imgui so its backend chains to it.
        glfw.set_key_callback(state.window, on_key)
        start_imgui(state.window)
        imgui_started = True
        overlay = Overlay(visible=settings.show_overlay)
        app.world.insert_resource(overlay)
        if settings.fullscreen or settings.kiosk:
            set_fullscreen(glfw, state, settings, True)
        return window_loop(glfw, app, state, overlay, settings, seconds, budget)
    finally:
        if target is not None and app.world.has_resource(GLTarget):
            finish_run(app, target, app.frame, app.exit_reason or "error", app.world.resource(Time).elapsed)
        if imgui_started:
            stop_imgui()
        if state.window:
            glfw.destroy_window(state.window)
        glfw.terminate()


def window_loop(
    glfw: Any, app: App, state: WindowState, overlay: Overlay, settings: DisplaySettings,
    seconds: float | None, budget: int | None,
) -> RunResult:
    pacer = Pacer(settings.fps)
    done = 0
    reason = "window closed"
    try:
        while not glfw.window_should_close(state.window):
            glfw.poll_events()
            apply_actions(glfw, app, state, overlay, settings)
            app.update()
            done += 1
            start = time.perf_counter()
            draw_window(glfw, app, state, overlay)
            glfw.swap_buffers(state.window)
            app.world.resource(SystemTimings).record("display.window_draw", (time.perf_counter() - start) * 1e3)
            if app.should_exit:
                reason = app.exit_reason or "exit requested"
                break
            if budget is not None and done >= budget:
                reason = "frame budget reached"
                break
            if seconds is not None and app.world.resource(Time).elapsed >= seconds:
                reason = "time limit reached"
                break
            pacer.wait()
    except KeyboardInterrupt:
        reason = "interrupted"
    elapsed = app.world.resource(Time).elapsed + app.world.resource(Time).delta
    return finish_run(app, app.world.resource(GLTarget), done, reason, elapsed)
