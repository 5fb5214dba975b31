"""Narrator: the engine's own voice, which speaks text into SpeechStreams sentence by sentence.

A worker thread loads the voice (Piper, or espeak-ng where Piper is missing: engine.audio.speak) and synthesises each
text one sentence at a time, appending every sentence to its stream as soon as it is made: the first sentence plays
while the rest is being synthesised, and the stream's marks caption each sentence as it is heard. A stream that is
cut (stop, interrupt) stops the synthesis of what is left. The frame loop never waits for the voice, except on a
stepped clock (`blocking`), where the whole text is synthesised at once so every headless run records the same.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass

from engine.audio.speak import SpeechSettings, SpeechSynthesizer
from engine.audio.speech_stream import SpeechStream, StreamClosed

log = logging.getLogger(__name__)
MAX_WAITING = 16
"""Texts waiting for the voice; one more is refused (a flood of `say text=` must not grow without end)."""


@dataclass
class Spoken:
    """One text's timings (time.perf_counter() seconds): when it was asked for, when its first sentence was ready."""

    text: str
    asked_s: float
    first_audio_s: float | None = None
    error: str | None = None


class Narrator:
    """Resource: speaks text into streams on a worker thread (see the module docstring)."""

    def __init__(self, settings: SpeechSettings = SpeechSettings(), sample_rate: int = 16000,
                 blocking: bool = False) -> None:
        self.settings = settings
        self.sample_rate = sample_rate
        self.blocking = blocking
        self.history: deque[Spoken] = deque(maxlen=64)
        """The latest texts and their timings (the bench reads them)."""
        self._voice: SpeechSynthesizer | None = None
        self._voice_lock = threading.Lock()
        self._jobs: queue.Queue[tuple[str, SpeechStream, Spoken] | None] = queue.Queue(maxsize=MAX_WAITING)
        self._thread: threading.Thread | None = None

    @property
    def voice(self) -> SpeechSynthesizer:
        """The loaded voice (loading it on first use: about a second for Piper)."""
        with self._voice_lock:
            if self._voice is None:
                self._voice = SpeechSynthesizer(self.settings, self.sample_rate)
            return self._voice

    def preload(self) -> None:
        """Load the voice now, on the worker (or here when blocking), so the first text is not kept waiting."""
        if self.blocking:
            self.voice
        else:
            self._start()
            threading.Thread(target=lambda: self.voice, name="narrator-load", daemon=True).start()

    def speak(self, text: str, stream: SpeechStream) -> Spoken:
        """Synthesise `text` into `stream` (then end it). Raises ValueError for text over the voice's limit and
        RuntimeError when too many texts are waiting."""
        spoken = Spoken(text, time.perf_counter())
        if self.blocking:
            self._synthesise(text, stream, spoken)
            return spoken
        self.voice.split(text)  # the checks, at once: the caller learns of bad text, not the log
        self._start()
        try:
            self._jobs.put_nowait((text, stream, spoken))
        except queue.Full:
            raise RuntimeError(f"busy: {MAX_WAITING} texts are waiting for the voice; retry later, or interrupt")\
                from None
        return spoken

    def close(self) -> None:
        """Stop the worker after the sentence it is making."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        while True:
            try:
                _, stream, _ = self._jobs.get_nowait()
                stream.cancel()
            except queue.Empty:
                break
        self._jobs.put(None)
        thread.join(timeout=10.0)

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="narrator", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            self._synthesise(*job)

    def _synthesise(self, text: str, stream: SpeechStream, spoken: Spoken) -> None:
        self.history.append(spoken)
        try:
            for sentence, samples in self.voice.sentences(text):
                if stream.cancelled:
                    break
                if spoken.first_audio_s is None:
                    spoken.first_audio_s = time.perf_counter()
                stream.append(samples, text=sentence)
        except StreamClosed:
            pass  # cut while a sentence was being made
        except Exception as error:  # the voice failed: this text ends here, the engine goes on
            spoken.error = f"{type(error).__name__}: {error}"
            log.exception("narrator: could not speak %r", text[:80])
        stream.end()
