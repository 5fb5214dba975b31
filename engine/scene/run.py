"""`syncanim run` and `syncanim demo`: assemble the engine, load a scene, hand it to a runner."""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import tyro

from engine.display.settings import DisplaySettings
from engine.scene import SCENES_DIR
from engine.scene.control_settings import ControlSettings

if TYPE_CHECKING:
    from engine.app import App
    from engine.display.headless import RunResult


@dataclass(frozen=True)
class RunOptions:
    """Run a scene script: in a window, or headless (no display needed) into an mp4."""

    scene: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="SCENE.py")]
    """The scene script: a .py file with `build(app)` (see scenes/)."""
    headless: bool = False
    """Render offscreen with no window and a stepped clock (exactly 1/fps per frame); use --out to record."""
    seconds: float | None = None
    """Stop after this many seconds of engine time (default: until the window closes or the scene ends)."""
    audio: Path | None = None
    """A speech file (wav, flac, mp3) for the scene to play; scenes read it from SceneArgs."""
    watch: bool = True
    """Reload the scene when its file is saved (a broken save keeps the running scene and shows the error)."""
    display: Annotated[DisplaySettings, tyro.conf.OmitArgPrefixes] = DisplaySettings()
    control: Annotated[ControlSettings, tyro.conf.OmitArgPrefixes] = ControlSettings()


@dataclass(frozen=True)
class DemoOptions:
    """The bundled demo: in a window when there is a display, else recorded to an mp4."""

    headless: bool | None = None
    """Force headless (True) or a window (False); default: a window when $DISPLAY or $WAYLAND_DISPLAY is set."""
    out: Path = Path("out/demo.mp4")
    """Where the headless demo is recorded."""
    seconds: float | None = None
    """Stop after this many seconds (default: when the demo audio ends)."""


def make_app(display: DisplaySettings, *, headless: bool, voices: tuple[str, ...] = ("main",),
             control: ControlSettings = ControlSettings()) -> App:
    """A live engine: lenient (a failing system is reported, the frame loop goes on), audio + display, and the
    control socket when `control.control` names an address. `voices` are the audio voices the scene speaks on."""
    from engine.app import App
    from engine.audio.plugin import audio_plugin
    from engine.audio.settings import AudioSettings
    from engine.display.plugin import display_plugin

    app = App(strict=False)
    app.insert_resource(display)
    app.insert_resource(AudioSettings(output="virtual" if headless else "auto", voices=voices))
    app.add_plugin(audio_plugin)
    app.add_plugin(display_plugin)
    app.insert_resource(control)
    if control.control is not None:
        from engine.scene.control import control_plugin

        app.add_plugin(control_plugin)
    return app


def run_scene(options: RunOptions) -> RunResult:
    """Build the engine, load the scene and run it until it ends; returns what the runner did."""
    from engine.scene.host import declared_voices, host_scene
    from engine.scene.loader import SceneArgs

    voices = declared_voices(options.scene) or ("main",)
    app = make_app(options.display, headless=options.headless, voices=voices, control=options.control)
    app.insert_resource(SceneArgs(Path(options.scene), options.audio, options.seconds))
    host_scene(app, options.scene, watch=options.watch)
    if options.headless:
        from engine.display.headless import run_headless

        return run_headless(app, seconds=options.seconds)
    from engine.display.window import run_window

    return run_window(app, seconds=options.seconds)


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def demo_run_options(options: DemoOptions) -> RunOptions:
    """Until the bundled avatar lands, the demo is the test card speaking its built-in tones."""
    headless = (not has_display()) if options.headless is None else options.headless
    display = DisplaySettings(out=options.out if headless else None)
    run = RunOptions(scene=SCENES_DIR / "test_card.py", headless=headless, seconds=options.seconds, display=display)
    if headless and options.seconds is None:
        run = replace(run, seconds=6.0)  # the built-in tone pattern's length
    return run
