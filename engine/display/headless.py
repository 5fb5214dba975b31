"""Headless runner: an EGL offscreen canvas and a stepped clock, so every run is deterministic and A/V-exact;
or, with `realtime`, the wall clock paced like a window (kiosks and anything fed from outside as it happens)."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from engine.display.plugin import display_plugin, follow_scene_background
from engine.display.present import Presenter
from engine.display.settings import DisplaySettings
from engine.display.sinks import SinkOutputs
from engine.display.target import GLTarget, create_target
from engine.ecs import Stage
from engine.time import MasterClock, Time

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


def use_clock(app: App, source: str, fps: float) -> None:
    """Give the fresh `app` a 'stepped' or 'wall' master clock at `fps`."""
    clock = app.world.resource(MasterClock)
    if clock.now > 0.0:
        raise RuntimeError("run_headless needs a fresh App: its clock has already advanced")
    app.world.insert_resource(MasterClock(source, fps))


@dataclass
class FrameWallTime:
    """Resource of real-time headless runs: the wall time (perf_counter) at which this frame's clock was read."""

    at: float = 0.0


def note_frame_start(world) -> None:
    """FIRST, right after tick_time: remember when the wall clock said Time.elapsed."""
    world.resource(FrameWallTime).at = time.perf_counter()


class SlotPacer:
    """Sleeps so each frame of a real-time run starts at the next of the clock's slots k/fps: a recording at fps then
    gets every frame at the start of its own slot, not somewhere inside it (see sinks.frames_due).

    A frame that overruns is not made up with a burst of short ones: the next one starts at once, for the slot
    nearest the present (the clock has moved on; the recording repeats the picture to follow it).
    """

    def __init__(self, fps: float) -> None:
        self.period = 1.0 / fps
        self.slot = 0
        """The slot the next frame is for (frame 0 is slot 0)."""
        self.late = 0
        """Frames that started more than half a period after their slot."""

    def wait(self, clock_now: float) -> None:
        """`clock_now`: the master clock's time now (seconds since the first frame)."""
        self.slot += 1
        pause = self.slot * self.period - clock_now
        if pause > 0:
            time.sleep(pause)
        elif -pause > 0.5 * self.period:
            self.late += 1
            self.slot = max(self.slot, math.floor(clock_now / self.period + 0.5))


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


def run_headless(app: App, seconds: float | None = None, frames: int | None = None, *,
                 realtime: bool | None = None) -> RunResult:
    """Run `app` offscreen: `frames` frames, or `seconds` of clock time, or until something requests exit.

    The canvas is DisplaySettings.size. The clock is stepped at DisplaySettings.fps (exactly 1/fps a frame, as fast
    as the machine goes), or with `realtime` (default: DisplaySettings.realtime) it follows the wall clock and the
    loop sleeps to run at fps, as a window does; a slow frame then covers more than 1/fps and the mp4 sink repeats
    it, so the recording keeps real time and its audio. Sinks (mp4, screenshots) run exactly as in the window.
    Returns a RunResult; mp4 paths are also printed.
    """
    app.add_plugin(display_plugin)
    follow_scene_background(app.world)  # before the window or canvas is made of the settings
    settings = app.world.resource(DisplaySettings)
    realtime = settings.realtime if realtime is None else realtime
    budget = frame_budget(settings.fps, seconds, frames)
    if realtime and frames is None:
        budget = None  # frames may cover more than 1/fps each: `seconds` is checked on the clock instead
    use_clock(app, "wall" if realtime else "stepped", settings.fps)
    pacer = None
    if realtime:
        pacer = SlotPacer(settings.fps)
        app.world.insert_resource(FrameWallTime())
        app.add_system(note_frame_start, Stage.FIRST, after=["engine.app.tick_time"])
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
            if pacer is not None:
                if seconds is not None and covered_s(app, settings.fps) >= seconds - 1e-6:
                    reason = "time limit reached"
                    break
                frame_time = app.world.resource(Time).elapsed
                pacer.wait(frame_time + time.perf_counter() - app.world.resource(FrameWallTime).at)
    except KeyboardInterrupt:
        reason = "interrupted"
    except BaseException:
        # Still close the sinks (the frames recorded so far are saved) before the error propagates.
        finish_run(app, target, done, "error", run_seconds(app, settings.fps, done, realtime))
        release_egl_context(ctx)
        raise
    try:
        return finish_run(app, target, done, reason, run_seconds(app, settings.fps, done, realtime))
    finally:
        release_egl_context(ctx)


def covered_s(app: App, fps: float) -> float:
    """Clock time the frames so far cover: the last frame's time plus its own period."""
    return app.world.resource(Time).elapsed + 1.0 / fps


def run_seconds(app: App, fps: float, frames: int, realtime: bool) -> float:
    if not realtime:
        return frames / fps
    return covered_s(app, fps) if frames else 0.0
