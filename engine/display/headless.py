"""Headless runner: an EGL offscreen canvas and a stepped clock, so every run is deterministic and A/V-exact."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from engine.display.plugin import display_plugin
from engine.display.present import Presenter
from engine.display.settings import DisplaySettings
from engine.display.sinks import SinkOutputs
from engine.display.target import GLTarget, create_target
from engine.time import MasterClock

if TYPE_CHECKING:
    from engine.app import App


@dataclass
class RunResult:
    """What a runner did: frames presented, clock time covered, why it stopped, files written."""

    frames: int
    seconds: float
    exit_reason: str
    outputs: list[Path] = field(default_factory=list)
    summaries: list[str] = field(default_factory=list)


def frame_budget(fps: float, seconds: float | None, frames: int | None) -> int | None:
    """How many frames to run: `frames`, else round(seconds * fps), else None (until the app exits)."""
    if frames is not None:
        if frames < 0:
            raise ValueError(f"frames must be >= 0, got {frames}")
        return int(frames)
    if seconds is not None:
        if not seconds >= 0 or math.isinf(seconds):
            raise ValueError(f"seconds must be a finite number >= 0, got {seconds}")
        return round(seconds * fps)
    return None


def create_egl_context():
    """A moderngl context with no display (EGL; Mesa llvmpipe on machines without a GPU)."""
    import moderngl

    try:
        return moderngl.create_standalone_context(require=330, backend="egl")
    except Exception as error:
        raise RuntimeError(
            f"cannot create a headless OpenGL context through EGL ({error}); install libegl1 and "
            "libegl-mesa0 (Debian/Ubuntu) or an NVIDIA driver with EGL support"
        ) from error


def release_egl_context(ctx) -> None:
    """Release `ctx` and unbind EGL from this thread.

    glcontext leaves the released EGL context current; a GLX window opened later in the same process
    (tests, a tool that renders offscreen then shows a window) then dies in glXMakeCurrent with
    BadAccess, which Xlib turns into exit(1).
    """
    import ctypes

    ctx.release()
    try:
        egl = ctypes.CDLL("libEGL.so.1")
    except OSError:
        return
    egl.eglGetCurrentDisplay.restype = ctypes.c_void_p
    egl.eglMakeCurrent.argtypes = [ctypes.c_void_p] * 4
    display = egl.eglGetCurrentDisplay()
    if display:
        egl.eglMakeCurrent(display, None, None, None)
    egl.eglReleaseThread()


def use_stepped_clock(app: App, fps: float) -> None:
    """Each update() advances exactly 1/fps: frames and audio samples line up exactly."""
    clock = app.world.resource(MasterClock)
    if clock.now > 0.0:
        raise RuntimeError("run_headless needs a fresh App: its clock has already advanced")
    app.world.insert_resource(MasterClock("stepped", fps))


def finish_run(app: App, target: GLTarget, frames: int, reason: str, seconds: float) -> RunResult:
    """Shut the app down (sinks save their files), release GL objects, report the outputs."""
    try:
        app.shutdown()
    finally:
        presenter = app.world.get_resource(Presenter)
        if presenter is not None:
            presenter.release()
            app.world.remove_resource(Presenter)
        target.release()
        app.world.remove_resource(GLTarget)
    outputs = app.world.get_resource(SinkOutputs) or SinkOutputs()
    for line in outputs.summaries:
        print(line, flush=True)
    return RunResult(frames, seconds, reason, list(outputs.written), list(outputs.summaries))


def run_headless(app: App, seconds: float | None = None, frames: int | None = None) -> RunResult:
    """Run `app` offscreen: `frames` frames, or `seconds` * fps, or until something requests exit.

    The canvas is DisplaySettings.size; the clock is stepped at DisplaySettings.fps. Sinks (mp4,
    screenshots) run exactly as in the window. Returns a RunResult; mp4 paths are also printed.
    """
    app.add_plugin(display_plugin)
    settings = app.world.resource(DisplaySettings)
    budget = frame_budget(settings.fps, seconds, frames)
    use_stepped_clock(app, settings.fps)
    ctx = create_egl_context()
    target = create_target(ctx, settings.size, runner="headless")
    app.world.insert_resource(target)
    done = 0
    reason = "frame budget reached"
    try:
        while budget is None or done < budget:
            app.update()
            done += 1
            if app.should_exit:
                reason = app.exit_reason or "exit requested"
                break
    except KeyboardInterrupt:
        reason = "interrupted"
    except BaseException:
        # Still close the sinks (the frames recorded so far are saved) before the error propagates.
        finish_run(app, target, done, "error", done / settings.fps)
        release_egl_context(ctx)
        raise
    try:
        return finish_run(app, target, done, reason, done / settings.fps)
    finally:
        release_egl_context(ctx)
