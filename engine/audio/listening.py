"""listening_plugin: the engine hears visitors. A microphone, or a recording standing in for one, is read on the
engine's clock; an UtteranceDetector finds speech in it (its echo gate fed with what the speakers play); Whisper
recognises each utterance; scene scripts get the messages.

    STARTUP      open_listening        the source, the recognizer (loaded now), the listener
    PRE_UPDATE   listen (after drain_audio)   source samples due by this frame + the frame's playback -> detector;
                                        SpeechStarted and Heard messages out (engine.audio.listen)

Times in the messages are engine seconds: the source is read from engine time 0, one sample per sample of clock.
On a wall clock the recognizer runs on the listener's thread and its Heard arrives when it is ready; on a stepped
clock (headless recordings, tests) it runs inside the frame that heard the end of the utterance, so every run of a
recorded question gives the same frames.
"""
from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.audio.listen import Heard, Listener, ListenSettings, SpeechStarted, Utterance, UtteranceDetector
from engine.audio.plugin import AudioLevel, drain_audio
from engine.audio.recognize import SpeechRecognizer
from engine.audio.settings import AudioSettings
from engine.audio.sources import AudioSource, FileSource, MicSource
from engine.ecs import Stage, World
from engine.time import MasterClock, Time

if TYPE_CHECKING:
    from engine.app import App

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ListeningSettings:
    """Resource: what the engine listens to and what it does when a visitor starts to speak."""

    file: Path | None = None
    """A recording that stands in for the microphone (None: the microphone)."""
    device: str | int | None = None
    """The microphone (name substring or PortAudio index; None: the system default)."""
    barge_in: bool = True
    """A visitor who starts to speak stops the avatars' speech (scene plugin: `stop_on_barge_in`)."""
    detector: ListenSettings = field(default_factory=ListenSettings)


@dataclass
class Listening:
    """Resource: the open source, how far it has been read, and the listener (or, on a stepped clock, the detector
    and recognizer it runs inline)."""

    source: AudioSource
    sample_rate: int
    listener: Listener | None = None
    detector: UtteranceDetector | None = None
    recognizer: SpeechRecognizer | None = None
    fed: int = 0
    """Source samples handed to the detector so far."""
    heard: deque[Heard] = field(default_factory=lambda: deque(maxlen=64))
    """The latest things heard, with their timings (for the bench and the tests)."""

    def close(self) -> None:
        if self.listener is not None:
            self.listener.close()
        self.source.close()


def listening_plugin(app: App) -> None:
    """Listen with the ListeningSettings inserted before (default: the microphone). Needs the audio plugin."""
    if not app.world.has_resource(ListeningSettings):
        app.world.insert_resource(ListeningSettings())
    app.add_system(open_listening, Stage.STARTUP, after=["engine.audio.plugin.open_audio"])
    app.add_system(listen, Stage.PRE_UPDATE, after=[drain_audio])
    app.on_shutdown(lambda: close_listening(app.world))


def open_listening(world: World) -> None:
    """Open the source and the recognizer, unless a Listening was inserted already (a source of the caller's)."""
    if world.has_resource(Listening):
        return
    settings = world.resource(ListeningSettings)
    rate = world.resource(AudioSettings).sample_rate
    if settings.file is not None:
        source: AudioSource = FileSource(settings.file, rate)
    else:
        source = MicSource(settings.device, rate).open()
    recognizer = SpeechRecognizer()
    listening = Listening(source, rate)
    if world.resource(MasterClock).source == "stepped":
        recognizer.load()
        listening.detector, listening.recognizer = UtteranceDetector(settings.detector), recognizer
    else:
        listening.listener = Listener(recognizer, settings.detector)
    world.insert_resource(listening)
    log.info("listening to %s", settings.file or getattr(source, "device_name", "the microphone"))


def close_listening(world: World) -> None:
    listening = world.get_resource(Listening)
    if listening is not None:
        listening.close()


def listen(world: World) -> None:
    """Feed the samples due by the end of this frame, with the frame's playback, and send what was heard."""
    listening = world.get_resource(Listening)
    if listening is None:  # it failed to open (reported then): the engine runs on without ears
        return
    due = round(world.resource(Time).elapsed * listening.sample_rate) - listening.fed
    if due <= 0:
        return
    heard = listening.source.read(due)
    listening.fed += due
    # A recording standing in for the microphone never heard this engine's speaker: there is no echo to gate.
    playback = None if world.resource(ListeningSettings).file is not None else _same_span(
        world.resource(AudioLevel).played, due)
    for event in _events(listening, heard, playback):
        if isinstance(event, SpeechStarted):
            world.messages(SpeechStarted).send(event)
        elif isinstance(event, Heard):
            log.info("heard %r (%.2f-%.2f s; recognised in %.2f s)", event.text, event.start_s, event.end_s,
                     event.transcript.seconds)
            listening.heard.append(event)
            if event.text:
                world.messages(Heard).send(event)


def _same_span(played: Any, due: int) -> Any:
    """The frame's playback cut or padded to the microphone block (the two clocks' blocks differ by a few samples)."""
    return played[:due] if len(played) >= due else np.pad(played, (0, due - len(played)))


def _events(listening: Listening, heard: Any, playback: Any) -> list[Any]:
    if listening.listener is not None:
        listening.listener.push(heard, playback)
        return listening.listener.poll()
    events = []
    for event in listening.detector.push(heard, playback):
        events.append(event)
        if isinstance(event, Utterance):
            transcript = listening.recognizer.transcribe(event.samples)
            events.append(Heard(event, transcript, 0.0, transcript.seconds))
    return events


__all__ = ["Heard", "Listening", "ListeningSettings", "SpeechStarted", "listen", "listening_plugin",
           "open_listening"]
