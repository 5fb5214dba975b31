"""Choreography: scene scripts are generators that yield steps (say, wait, frame, on_message, ...), run by the clock.

    def main(d):                                   # d is a Director
        yield d.say("hello.wav", caption="Hello")  # resumes when the clip has been heard to its end
        yield d.frame("max", over=1.0)             # eased framing transition
        message = yield d.on_message("cue")        # a control message of that type
        yield 0.5                                  # a number is wait(seconds); None waits one frame

`run_scripts` (Stage.UPDATE) advances every script once per frame, on engine time (`Time.elapsed`), so a stepped
clock gives the same timeline every run. A script that raises is reported in Diagnostics (the overlay) and logged
with the scene file and line it raised at, and stops; the rest of the scene keeps playing. Each step is logged as a
SceneEvent message.
"""
from __future__ import annotations

import inspect
import logging
import traceback
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.app import AppExit, Diagnostics
from engine.audio.listen import Heard, SpeechStarted
from engine.ecs import World
from engine.scene import actions
from engine.scene.components import SceneEvent
from engine.scene.protocol import ControlRequest
from engine.time import Time

if TYPE_CHECKING:
    from engine.audio.playback import PlaybackHandle

log = logging.getLogger(__name__)

MAX_INSTANT_STEPS = 1000
"""Steps a script may finish in one frame; more is a loop that never waits (it would freeze the engine)."""


class Step:
    """One thing a script waits for. `begin` runs when the script yields it; `finished` is polled every frame."""

    kind = "step"
    result: Any = None

    def begin(self, world: World, run: ScriptRun) -> None:
        pass

    def finished(self, world: World, run: ScriptRun) -> bool:
        return True

    def detail(self) -> dict[str, Any]:
        return {}


@dataclass
class Say(Step):
    clip: Any
    avatar: str | None = None
    voice: str | None = None
    interrupt: bool = False
    caption: str | None = None
    wait: bool = True
    kind = "say"

    def begin(self, world: World, run: ScriptRun) -> None:
        if actions.is_text(self.clip):
            self.result = actions.speak_text(world, self.clip, avatar=self.avatar, voice=self.voice,
                                             interrupt=self.interrupt)
        else:
            self.result = actions.speak(world, self.clip, avatar=self.avatar, voice=self.voice,
                                        interrupt=self.interrupt, caption=self.caption)

    def finished(self, world: World, run: ScriptRun) -> bool:
        return not self.wait or self.result.done

    def detail(self) -> dict[str, Any]:
        if actions.is_text(self.clip):
            return {"text": self.clip[:200], "avatar": self.avatar, "voice": self.voice, "interrupt": self.interrupt}
        name = self.clip if isinstance(self.clip, (str, Path)) else getattr(self.clip, "name", "array")
        return {"clip": str(name), "avatar": self.avatar, "voice": self.voice, "interrupt": self.interrupt}


@dataclass
class Wait(Step):
    seconds: float
    end_s: float = 0.0
    kind = "wait"

    def begin(self, world: World, run: ScriptRun) -> None:
        if not self.seconds >= 0.0:
            raise ValueError(f"wait(seconds) needs seconds >= 0, got {self.seconds!r}")
        self.end_s = world.resource(Time).elapsed + self.seconds

    def finished(self, world: World, run: ScriptRun) -> bool:
        # The epsilon keeps a stepped clock's float sums from spilling a wait into the next frame.
        return world.resource(Time).elapsed >= self.end_s - 1e-6

    def detail(self) -> dict[str, Any]:
        return {"seconds": self.seconds}


@dataclass
class NextFrame(Step):
    frame: int = -1
    kind = "next_frame"

    def begin(self, world: World, run: ScriptRun) -> None:
        self.frame = world.resource(Time).frame

    def finished(self, world: World, run: ScriptRun) -> bool:
        return world.resource(Time).frame > self.frame


@dataclass
class SetMode(Step):
    mode: str
    avatar: str | None = None
    reference: Any = None
    kind = "mode"

    def begin(self, world: World, run: ScriptRun) -> None:
        self.result = actions.set_mode(world, self.mode, avatar=self.avatar, reference=self.reference)

    def detail(self) -> dict[str, Any]:
        return {"mode": self.mode, "avatar": self.avatar}


@dataclass
class Frame(Step):
    framing: str | float
    over: float = 0.0
    avatar: str | None = None
    wait: bool = True
    end_s: float = 0.0
    kind = "frame"

    def begin(self, world: World, run: ScriptRun) -> None:
        self.result = actions.start_framing(world, self.framing, over=self.over, avatar=self.avatar)
        self.end_s = world.resource(Time).elapsed + self.over

    def finished(self, world: World, run: ScriptRun) -> bool:
        return not self.wait or world.resource(Time).elapsed >= self.end_s - 1e-6

    def detail(self) -> dict[str, Any]:
        return {"framing": self.framing, "over": self.over, "avatar": self.avatar}


@dataclass
class ShowCaption(Step):
    text: str
    for_s: float | None = None
    slot: str = "main"
    look: dict[str, Any] = field(default_factory=dict)
    kind = "caption"

    def begin(self, world: World, run: ScriptRun) -> None:
        actions.show_caption(world, self.text, for_s=self.for_s, slot=self.slot, **self.look)

    def detail(self) -> dict[str, Any]:
        return {"text": self.text, "for_s": self.for_s}


@dataclass
class OnMessage(Step):
    """Waits for a control message of `type` (e.g. 'say', 'cue'); with `name`, only a cue of that name."""

    type: str
    name: str | None = None
    timeout: float | None = None
    end_s: float | None = None
    kind = "on_message"

    def begin(self, world: World, run: ScriptRun) -> None:
        if self.timeout is not None:
            self.end_s = world.resource(Time).elapsed + self.timeout

    def finished(self, world: World, run: ScriptRun) -> bool:
        for message in run.inbox:
            if not isinstance(message, ControlRequest):
                continue
            if message.type == self.type and (self.name is None or message.fields.get("name") == self.name):
                run.inbox.remove(message)  # taken: a later on_message in this frame waits for another one
                self.result = message
                return True
        return self.end_s is not None and world.resource(Time).elapsed >= self.end_s - 1e-6

    def detail(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name}


@dataclass
class OnListened(Step):
    """Waits for what the listener reports: what a visitor said (Heard) or that one started to speak
    (SpeechStarted); None after `timeout` seconds."""

    message_type: type
    timeout: float | None = None
    end_s: float | None = None
    kind = "on_listened"

    def begin(self, world: World, run: ScriptRun) -> None:
        if self.timeout is not None:
            self.end_s = world.resource(Time).elapsed + self.timeout

    def finished(self, world: World, run: ScriptRun) -> bool:
        for message in run.inbox:
            if isinstance(message, self.message_type):
                run.inbox.remove(message)
                self.result = message
                return True
        return self.end_s is not None and world.resource(Time).elapsed >= self.end_s - 1e-6

    def detail(self) -> dict[str, Any]:
        return {"type": self.message_type.__name__}


@dataclass
class Until(Step):
    """Waits until `condition()` is true, or a PlaybackHandle is done."""

    condition: Callable[[], bool] | PlaybackHandle
    kind = "until"

    def finished(self, world: World, run: ScriptRun) -> bool:
        condition = self.condition
        return bool(condition()) if callable(condition) else bool(condition.done)


@dataclass
class Start(Step):
    """Starts another script alongside this one (it does not wait for it)."""

    script: Callable[..., Any]
    name: str | None = None
    kind = "start"

    def begin(self, world: World, run: ScriptRun) -> None:
        start_script(world, self.script, name=self.name)


@dataclass
class Exit(Step):
    """Asks the runner to stop after this frame (a scene that has finished its story)."""

    reason: str = "the scene script ended the run"
    kind = "exit"

    def begin(self, world: World, run: ScriptRun) -> None:
        world.messages(AppExit).send(AppExit(self.reason))


class Director:
    """What a scene script gets: makers of steps to `yield`, plus the world and the time."""

    def __init__(self, world: World) -> None:
        self.world = world

    @property
    def now(self) -> float:
        """Engine time in seconds."""
        return self.world.resource(Time).elapsed

    def say(self, clip: Any, *, avatar: str | None = None, voice: str | None = None, interrupt: bool = False,
            caption: str | None = None, wait: bool = True) -> Say:
        """Speak `clip`: an AudioClip, an audio file's path, a mono array at 16 kHz, or text (a str that names no
        audio file: the engine's voice speaks it, each sentence captioned). Resumes when it has been heard to its
        end (wait=False: at once; the step's result is the PlaybackHandle either way)."""
        return Say(clip, avatar, voice, interrupt, caption, wait)

    def wait(self, seconds: float) -> Wait:
        return Wait(float(seconds))

    def set_mode(self, mode: str, *, avatar: str | None = None, reference: Any = None) -> SetMode:
        """'one-shot' (from `reference` pose and expression, or the model's first frame) or 'zero-shot'."""
        return SetMode(mode, avatar, reference)

    def frame(self, framing: str | float, *, over: float = 0.0, avatar: str | None = None,
              wait: bool = True) -> Frame:
        """Ease to 'default', 'med', 'max' or a zoom in [0, 1] over `over` seconds (resumes when there)."""
        return Frame(framing, float(over), avatar, wait)

    def caption(self, text: str, *, for_s: float | None = None, slot: str = "main", **look: Any) -> ShowCaption:
        """Show `text` in caption `slot` (for `for_s` seconds, or until replaced; '' hides it); `look` sets anchor
        ('bottom' | 'top'), size, color, box_alpha."""
        return ShowCaption(text, for_s, slot, look)

    def on_message(self, type: str, *, name: str | None = None, timeout: float | None = None) -> OnMessage:
        """Resumes with the next control message of `type` (a ControlRequest), or None after `timeout` seconds.
        Messages that arrive while the script waits on another step are not kept for it."""
        return OnMessage(type, name, timeout)

    def on_heard(self, *, timeout: float | None = None) -> OnListened:
        """Resumes with the next thing a visitor said (Heard: .text, .start_s, .end_s in engine time), or None after
        `timeout` seconds. Needs `scene.listen()`."""
        return OnListened(Heard, timeout)

    def on_speech_start(self, *, timeout: float | None = None) -> OnListened:
        """Resumes when a visitor starts to speak (SpeechStarted: .start_s), or None after `timeout` seconds."""
        return OnListened(SpeechStarted, timeout)

    def until(self, condition: Callable[[], bool] | PlaybackHandle) -> Until:
        return Until(condition)

    def start(self, script: Callable[..., Any], *, name: str | None = None) -> Start:
        """Run `script(director)` alongside the current one."""
        return Start(script, name)

    def exit(self, reason: str = "the scene script ended the run") -> Exit:
        """Stop the engine after this frame (headless recordings of a finished scene)."""
        return Exit(reason)


@dataclass
class ScriptRun:
    """One running script: its generator, the step it waits on, and this frame's new messages (control, listener)."""

    name: str
    generator: Generator[Any, Any, Any]
    step: Step | None = None
    inbox: list[Any] = field(default_factory=list)


@dataclass
class Scripts:
    """Resource: the scene's running scripts, and the most recent SceneEvents (for `status` and the overlay)."""

    running: list[ScriptRun] = field(default_factory=list)
    recent: deque[SceneEvent] = field(default_factory=lambda: deque(maxlen=64))


def start_script(world: World, script: Callable[..., Any], *, name: str | None = None) -> ScriptRun | None:
    """Start `script(Director)`; a plain function runs once now, a generator function runs as a coroutine."""
    scripts = world.get_resource(Scripts)
    if scripts is None:
        scripts = Scripts()
        world.insert_resource(scripts)
    name = name or getattr(script, "__name__", "script")
    result = script(Director(world))
    if not inspect.isgenerator(result):
        return None
    run = ScriptRun(name, result)
    scripts.running.append(run)
    emit(world, run, "start")
    return run


def emit(world: World, run: ScriptRun, kind: str, **detail: Any) -> None:
    time = world.resource(Time)
    event = SceneEvent(time.elapsed, time.frame, run.name, kind, detail)
    world.messages(SceneEvent).send(event)
    scripts = world.get_resource(Scripts)
    if scripts is not None:
        scripts.recent.append(event)
    log.debug("scene %s at %.3f s: %s %s", run.name, time.elapsed, kind, detail)


def as_step(value: Any) -> Step:
    if isinstance(value, Step):
        return value
    if value is None:
        return NextFrame()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Wait(float(value))
    raise TypeError(f"a scene script yielded {value!r}; yield a step (d.say, d.wait, d.frame, ...), "
                    "a number of seconds, or None for the next frame")


def advance(world: World, run: ScriptRun) -> bool:
    """Run `run` until it waits on an unfinished step; False once it has ended (returned or raised)."""
    error: Exception | None = None
    for _ in range(MAX_INSTANT_STEPS):
        step = run.step
        if step is not None:
            if not step.finished(world, run):
                return True
            emit(world, run, f"{step.kind}:done", result=_describe(step.result))
        run.step = None
        try:
            # A step that failed to begin is raised inside the script, which may catch it.
            value = run.generator.throw(error) if error is not None else run.generator.send(
                step.result if step is not None else None)
        except StopIteration:
            emit(world, run, "end")
            return False
        step, error = as_step(value), None
        try:
            step.begin(world, run)
        except Exception as failure:
            emit(world, run, f"{step.kind}:failed", error=f"{type(failure).__name__}: {failure}")
            error, step = failure, None
            continue
        emit(world, run, step.kind, **step.detail())
        run.step = step
    raise RuntimeError(f"script {run.name!r} took {MAX_INSTANT_STEPS} steps in one frame without waiting; "
                       "yield d.wait(seconds) or None inside its loops")


def _describe(result: Any) -> Any:
    return result if isinstance(result, (int, float, str, bool, type(None))) else type(result).__name__


class ScriptError(RuntimeError):
    """A scene script raised: the message names the scene file and line, then the error."""


def script_origin(run: ScriptRun, error: BaseException) -> str:
    """'FILE:LINE' in the script's own file that `error` came from: the innermost traceback frame in that file (so a
    helper in the same scene counts), else the line the script waits at (a bad yield, a loop that never waits)."""
    code = getattr(run.generator, "gi_code", None)
    if code is None:
        return f"script {run.name}"
    own = [frame for frame in traceback.extract_tb(error.__traceback__) if frame.filename == code.co_filename]
    if own:
        return f"{own[-1].filename}:{own[-1].lineno}"
    frame = run.generator.gi_frame
    return f"{code.co_filename}:{frame.f_lineno if frame is not None else code.co_firstlineno}"


def close_script(run: ScriptRun) -> None:
    """End a script's generator (its `finally` blocks run); one that refuses to end is logged and dropped."""
    try:
        run.generator.close()
    except Exception:  # e.g. it yielded again on GeneratorExit
        log.exception("scene script %s did not stop cleanly", run.name)


def run_scripts(world: World) -> None:
    """Advance every running script by one frame; a failing script is reported and dropped, the others go on."""
    # Read every frame: a script waits for new ones only.
    inbox = [*world.messages(ControlRequest).read(run_scripts), *world.messages(SpeechStarted).read(run_scripts),
             *world.messages(Heard).read(run_scripts)]
    scripts = world.get_resource(Scripts)
    if scripts is None or not scripts.running:
        return
    ended: set[int] = set()
    index = 0
    # Indexing (not iterating) lets a script started in this pass (d.start) take its first steps this frame too.
    while index < len(scripts.running):
        run = scripts.running[index]
        index += 1
        run.inbox = list(inbox)  # each script sees each message once
        try:
            alive = advance(world, run)
        except Exception as error:
            where = script_origin(run, error)
            # The log line and the overlay name the user's file and line, not only the error's text.
            world.resource(Diagnostics).report(f"scene script {run.name}",
                                               ScriptError(f"{where}: {type(error).__name__}: {error}"))
            emit(world, run, "error", error=f"{type(error).__name__}: {error}", at=where)
            close_script(run)
            alive = False
        if not alive:
            ended.add(id(run))
    scripts.running = [run for run in scripts.running if id(run) not in ended]
