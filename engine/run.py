"""`syncanim run` and `syncanim demo`: assemble the engine, load a scene, hand it to a runner; `syncanim schedule`:
the frame that engine runs, system by system."""
from __future__ import annotations

import ctypes
import logging
import math
import os
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import tyro

from engine.app import App, Diagnostics
from engine.audio.devices import AudioDeviceError, find_device, open_pyaudio
from engine.audio.plugin import audio_plugin
from engine.audio.settings import AudioSettings
from engine.audio.speak import SpeechSettings
from engine.display.settings import DisplaySettings, Size
from engine.ecs import Stage
from engine.introspect import schedule_rows, traced
from engine.nerf.settings import QualitySettings
from engine.scene import SCENES_DIR
from engine.scene.actions import backdrop_look, framing_zoom, scene_framing
from engine.scene.control_settings import TOKEN_ENV, ControlSettings, OperatorControl, changed_fields, with_token
from engine.scene.host import host_scene
from engine.scene.loader import SceneArgs
from engine.time import Time

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from engine.display.headless import RunResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    """Run a scene script: in a window, or headless (no display needed) into an mp4."""

    scene: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="SCENE.py")]
    """The scene script: a .py file with `build(app)` (see scenes/)."""
    headless: bool = False
    """Render offscreen with no window and a stepped clock (exactly 1/fps per frame; --realtime follows the wall
    clock instead); use --out to record."""
    seconds: float | None = None
    """Stop after this many seconds of engine time (default: until the window closes or the scene ends)."""
    audio: Path | None = None
    """A speech file (wav, flac, mp3) for the scene to play; scenes read it from SceneArgs."""
    avatar: Path | None = None
    """The avatar folder (from `syncanim train`) for scenes that show one avatar (kiosk, demo, framing_tour);
    default $SYNCANIM_AVATAR, else the scene's own (the bundled assets/avatar)."""
    framing: str | None = None
    """The framing of scenes that take one (scenes/clip.py): 'default', 'med', 'max' or a zoom in [0, 1]."""
    backdrop: str | None = None
    """What scenes that take one (scenes/clip.py) show behind the avatar: 'plate' (the room it was recorded in), a
    colour (#RRGGBB), 'chroma' (green, for keying) or a picture file."""
    mic: bool = False
    """The main voice hears the microphone (the system default input, or --mic-device) instead of the clips it
    plays. Headless runs with a microphone follow the wall clock (--realtime)."""
    mic_device: str | None = None
    """Microphone name (a substring is enough) or PortAudio index, with --mic or --listen; default: the system's."""
    listen: bool = False
    """Scenes that listen (scenes/concierge.py) hear the microphone (or --mic-device): what visitors say is
    recognised and handed to the scene's scripts."""
    listen_file: Path | None = None
    """A recording that stands in for the microphone of scenes that listen: fed to the listening path exactly as
    the microphone would be, in real time on the engine's clock (tests, demos, a headless run)."""
    faq: Path | None = None
    """The questions and answers of scenes that answer questions (scenes/concierge.py): a JSON list of objects with
    `question` and `answer`; default: the scene's own."""
    speech_voice: str = "joe"
    """The voice the engine speaks text with: 'joe' (Piper's en_US-joe-medium), a Piper .onnx file, or 'espeak' /
    'espeak:VOICE' (espeak-ng)."""
    watch: bool = True
    """Reload the scene when its file is saved (a broken save keeps the running scene and shows the error)."""
    display: Annotated[DisplaySettings, tyro.conf.OmitArgPrefixes] = DisplaySettings()
    control: Annotated[ControlSettings, tyro.conf.OmitArgPrefixes] = ControlSettings()
    quality: Annotated[QualitySettings, tyro.conf.OmitArgPrefixes] = QualitySettings()
    """--head-scale and --precision: given, they win over what the scene sets for its avatars."""
    control_given: Annotated[frozenset[str] | None, tyro.conf.Suppress] = None
    """The control fields the operator set on the command line (`syncanim run` fills it in from argv); None: those
    that differ from the defaults."""

    def __post_init__(self) -> None:
        check_seconds(self.seconds)
        if self.framing is not None:
            framing_zoom(scene_framing(self.framing))
        if self.backdrop is not None:
            backdrop_look(self.backdrop)
        if self.listen and self.listen_file is not None:
            raise ValueError("--listen (the microphone) and --listen-file FILE both given; pick one")
        if self.listen_file is not None and not self.listen_file.is_file():
            raise ValueError(f"--listen-file {self.listen_file}: no such file; pass a recording (wav, flac, mp3)")
        SpeechSettings(voice=self.speech_voice)  # an unknown voice is refused before anything starts


def control_flags_given(argv: Sequence[str]) -> frozenset[str]:
    """The ControlSettings fields named by flags in `argv` (--control-token X, --control-token=X,
    --no-control-allow-load-scene, underscores or hyphens): these win over a scene's own defaults, even where the
    operator typed a default value."""
    names = {f.name for f in fields(ControlSettings)}
    given = set()
    for arg in argv:
        if arg == "--":
            break  # the rest is positional
        if not arg.startswith("--"):
            continue
        flag = arg[2:].split("=", 1)[0].replace("-", "_")
        for name in (flag, flag.removeprefix("no_")):
            if name in names:
                given.add(name)
    return frozenset(given)


@dataclass(frozen=True)
class DemoOptions:
    """The bundled demo: the bundled avatar reads the bundled audio clips, in a window when there is a display, else
    recorded to an mp4. With --mic it follows the microphone instead."""

    headless: bool = False
    """Record to --out even when there is a display (default: a window when $DISPLAY or $WAYLAND_DISPLAY is set,
    else the recording)."""
    window: bool = False
    """Open a window even when neither $DISPLAY nor $WAYLAND_DISPLAY is set (--headless wins over it)."""
    out: Path = Path("out/demo.mp4")
    """Where the headless demo is recorded."""
    seconds: float | None = None
    """Stop after this many seconds (default: when the demo clips have been read; with --mic, when closed)."""
    mic: bool = False
    """Drive the avatar from the default microphone (or --mic-device) instead of the bundled clips."""
    mic_device: str | None = None
    """Microphone name (a substring is enough) or PortAudio index, with --mic."""
    avatar: Path | None = None
    """Another avatar folder to show instead of the bundled assets/avatar."""
    audio: Path | None = None
    """Another clip, or a folder of .wav clips, to read instead of the bundled assets/audio."""
    size: Size | None = None
    """Canvas size in pixels (WxH): the window's content and the recording's frame. Default: 512x512 when recording
    or on a GPU; in a window on a CPU, 256x256 (what a 2-core CPU renders in real time) shown in a 512x512 window."""
    quality: Annotated[QualitySettings, tyro.conf.OmitArgPrefixes] = QualitySettings()
    """--head-scale 1 renders the head at full resolution (default 'auto': half resolution on a CPU above 128x128)."""

    def __post_init__(self) -> None:
        check_seconds(self.seconds)
        if self.out.suffix.lower() != ".mp4":
            raise ValueError(f"--out {self.out}: the demo records an mp4 file; pass e.g. --out out/demo.mp4")


def check_seconds(seconds: float | None) -> None:
    """--seconds is a finite number of seconds >= 0 (0 renders nothing), or left out."""
    if seconds is not None and not (math.isfinite(seconds) and seconds >= 0):
        raise ValueError(f"--seconds {seconds}: pass a number of seconds >= 0, or leave it out to run until the end")


@dataclass
class FreedMemory:
    """Resource of live engines: handing the memory glibc's heap holds free back to the system, every `every_s`."""

    every_s: float = 10.0
    """Engine seconds between malloc_trim calls (each takes about a millisecond)."""
    next_s: float = 0.0
    trims: int = 0


@lru_cache(maxsize=1)
def _malloc_trim():
    try:
        return getattr(ctypes.CDLL(None), "malloc_trim", None)  # glibc only; elsewhere nothing to do
    except OSError:
        return None


def return_freed_memory(world) -> None:
    """LAST: frame buffers, captions and clips of every size come and go all day; glibc keeps what they free in its
    heap, fragmented: a kiosk fed varied speech saw its heap swing from 48 to 102 MB and back within 2 minutes with
    nothing leaked in Python (tracemalloc flat), and a 30-minute kiosk soak grew 22 % (out/soak30, before this).
    malloc_trim gives the free pages back (the same 2 minutes: heap 47-61 MB)."""
    freed = world.resource(FreedMemory)
    now = world.resource(Time).elapsed
    trim = _malloc_trim()
    if trim is None or now < freed.next_s:
        return
    freed.next_s = now + freed.every_s
    trim(0)
    freed.trims += 1


def make_app(display: DisplaySettings, *, headless: bool, voices: tuple[str, ...] = ("main",),
             control: ControlSettings = ControlSettings(), mic: bool = False, mic_device: str | None = None) -> App:
    """A live engine: lenient (a failing system is reported, the frame loop goes on), audio + display, freed memory
    handed back to the system as it runs, and the control socket when `control.control` names an address. `voices`
    are the audio voices the scene speaks on; `mic` makes the main voice hear the microphone."""
    from engine.display.plugin import display_plugin

    app = App(strict=False)
    app.insert_resource(display)
    app.insert_resource(AudioSettings(output="virtual" if headless else "auto", voices=voices,
                                      input="mic" if mic else "none", input_device=mic_device))
    app.add_plugin(audio_plugin)
    app.add_plugin(display_plugin)
    app.insert_resource(FreedMemory())
    app.add_system(return_freed_memory, Stage.LAST)
    app.insert_resource(control)
    if control.control is not None:
        from engine.scene.control import control_plugin

        app.add_plugin(control_plugin)
    return app


def check_microphone(device: str | None, how: str = "--mic") -> str:
    """The name of the microphone the engine would open; an AudioDeviceError naming the fix when there is none."""
    try:
        pa = open_pyaudio()
        try:
            return str(find_device(pa, device, "input")["name"])
        finally:
            pa.terminate()
    except AudioDeviceError as error:
        raise AudioDeviceError(
            f"{how}: {error} To fix: connect or enable a microphone (`arecord -l` lists what ALSA sees; PulseAudio or "
            "PipeWire users check `pactl list short sources`), name another one with --mic-device NAME, or leave "
            "out --mic to play clips instead") from None


@contextmanager
def sigterm_stops_the_run() -> Iterator[None]:
    """SIGTERM (systemd, `kill`, a supervisor) ends the run like Ctrl-C: the recording so far is saved."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def operator_control(options: RunOptions) -> OperatorControl:
    """The operator's control settings (token from --control-token-file or $SYNCANIM_CONTROL_TOKEN filled in) and
    the fields they set."""
    given = options.control_given if options.control_given is not None else changed_fields(options.control)
    if "control_token" in given and options.control.control_token is not None:
        log.warning("--control-token is visible to every local user in the process list (ps); pass "
                    "--control-token-file FILE (chmod 600) or set $%s instead", TOKEN_ENV)
    settings = with_token(options.control)
    if settings.control_token != options.control.control_token:
        given = given | {"control_token"}
    return OperatorControl(settings, frozenset(given))


def run_scene(options: RunOptions) -> RunResult:
    """Build the engine, load the scene and run it until it ends; returns what the runner did."""
    app = assemble_scene(options)
    with sigterm_stops_the_run():
        if options.headless:
            from engine.display.headless import run_headless

            return run_headless(app, seconds=options.seconds)
        from engine.display.window import run_window

        return run_window(app, seconds=options.seconds)


def assemble_scene(options: RunOptions) -> App:
    """The engine of `syncanim run` with its scene built, not started (the runner's first frame starts it)."""
    operator = operator_control(options)
    display = options.display
    if options.mic or options.listen:
        check_microphone(options.mic_device, "--mic" if options.mic else "--listen")
        if options.headless and not display.realtime:
            display = replace(display, realtime=True)  # a live microphone cannot be stepped faster than it speaks
    app = make_app(display, headless=options.headless, control=operator.settings, mic=options.mic,
                   mic_device=options.mic_device)
    # Before the scene is built: a scene that opens its own socket (the kiosk) keeps every setting given here.
    app.insert_resource(operator)
    app.insert_resource(options.quality)  # the operator's render quality wins over the scene's per avatar
    app.insert_resource(SceneArgs(Path(options.scene), options.audio, options.seconds, options.avatar,
                                  options.framing, options.backdrop, listen=options.listen,
                                  listen_file=options.listen_file, faq=options.faq, mic_device=options.mic_device))
    app.insert_resource(SpeechSettings(voice=options.speech_voice))
    host_scene(app, options.scene, watch=options.watch)
    unused = sorted(operator.given - {"control"})
    if unused and app.world.resource(ControlSettings).control is None:
        flags = ", ".join("--" + name.replace("_", "-") for name in unused)
        app.world.resource(Diagnostics).warn(f"{flags} given, but {options.scene} opens no control socket; add "
                                             "--control 127.0.0.1:7878 to open one")
    return app


@dataclass(frozen=True)
class ScheduleOptions:
    """Print the frame as the engine runs it for a scene: every stage's systems in order, each with the resources and
    components it read and wrote while a few frames ran headless (nothing is shown or recorded)."""

    scene: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="SCENE.py")] = SCENES_DIR / "demo.py"
    """The scene script (default: the bundled demo)."""
    frames: int = 3
    """Frames to run while recording what each system touches (the first also runs STARTUP)."""
    audio: Path | None = None
    """A speech file for scenes that read one (as `syncanim run --audio`)."""
    avatar: Path | None = None
    """The avatar folder for one-avatar scenes (as `syncanim run --avatar`)."""

    def __post_init__(self) -> None:
        if self.frames < 1:
            raise ValueError(f"--frames {self.frames}: run at least 1 frame")


def print_schedule(options: ScheduleOptions) -> list:
    """Run the scene's engine for options.frames frames with every system traced, print the table, return its rows."""
    from rich.console import Console
    from rich.table import Table

    app = assemble_scene(RunOptions(scene=options.scene, headless=True, audio=options.audio, avatar=options.avatar,
                                    watch=False, display=DisplaySettings(size=(128, 128))))
    try:
        with traced(app) as tracer:
            for _ in range(options.frames):
                app.update()
        rows = schedule_rows(app, tracer)
    finally:
        app.shutdown()
    table = Table(title=f"The frame of {options.scene} ({options.frames} frames traced)", show_lines=False)
    for column in ("stage", "system", "reads", "writes", "runs"):
        table.add_column(column, overflow="fold")
    stage = None
    for row in rows:
        access = row.access
        name = row.name.removeprefix("engine.") + (" (if)" if row.conditional else "")
        reads, writes = ", ".join(sorted(access.reads - access.writes)), ", ".join(sorted(access.writes))
        table.add_row(row.stage.value if row.stage != stage else "", name, reads, writes, str(access.ran))
        stage = row.stage
    Console().print(table)
    print("reads: asked of the world and left as it was; writes: inserted, removed, spawned, or an attribute replaced "
          "(changes made inside an object show as reads); (if): runs only when its condition holds")
    return rows


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def demo_run_options(options: DemoOptions) -> RunOptions:
    """scenes/demo.py: in a window when there is a display, else headless into `options.out`. It runs with whatever
    is missing (no avatar: captions only; no clips: a notice) and says what to run."""
    headless = options.headless or not (options.window or has_display())
    size, window = options.size, None
    if size is None:
        size = (512, 512) if headless or _cuda_available() else (256, 256)
        window = (512, 512)
    display = DisplaySettings(size=size, window_size=window, out=options.out if headless else None,
                              title="SyncAnimation demo")
    return RunOptions(scene=SCENES_DIR / "demo.py", headless=headless, seconds=options.seconds, audio=options.audio,
                      avatar=options.avatar, mic=options.mic, mic_device=options.mic_device, display=display,
                      watch=False, quality=options.quality)
