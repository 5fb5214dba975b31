"""Narrator: the engine's own voice, which speaks text into SpeechStreams sentence by sentence.

A worker thread loads the voice (Piper, or espeak-ng where Piper is missing: engine.audio.speak) and synthesises each
text one sentence at a time, appending every sentence to its stream as soon as it is made: the first sentence plays
while the rest is being synthesised, and the stream's marks caption each sentence as it is heard. A stream that is
cut (stop, interrupt) stops the synthesis of what is left. The frame loop never waits for the voice, except on a
stepped clock (`blocking`), where the whole text is synthesised at once so every headless run records the same.
Sentences said often (a kiosk's answers) can be prepared ahead and start at once.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from engine.audio.speak import SpeechSettings, SpeechSynthesizer, pieces
from engine.audio.speech_stream import SpeechStream, StreamClosed

log = logging.getLogger(__name__)
MAX_WAITING = 16
"""Texts waiting for the voice; one more is refused (a flood of `say text=` must not grow without end)."""
MAX_PREPARED = 512
"""Sentences kept ready (`prepare`); the oldest go first."""


@dataclass
class Spoken:
    """One text's timings (time.perf_counter() seconds): when it was asked for, when its first sentence was ready."""

    text: str
    asked_s: float
    first_audio_s: float | None = None
    error: str | None = None


class Narrator:
    """Resource: speaks text into streams on a worker thread (see the module docstring). Texts to speak always go
    before sentences being prepared, which the worker makes one at a time when it has nothing to say."""

    def __init__(self, settings: SpeechSettings = SpeechSettings(), sample_rate: int = 16000,
                 blocking: bool = False) -> None:
        self.settings = settings
        self.sample_rate = sample_rate
        self.blocking = blocking
        self.history: deque[Spoken] = deque(maxlen=64)
        """The latest texts with their timings and errors, for whoever watches the voice."""
        self._voice: SpeechSynthesizer | None = None
        self._voice_lock = threading.Lock()
        self._texts: deque[tuple[str, SpeechStream, Spoken]] = deque()
        self._to_prepare: deque[str] = deque(maxlen=MAX_PREPARED)
        self._prepared: OrderedDict[str, np.ndarray] = OrderedDict()
        self._work_ready = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None

    @property
    def voice(self) -> SpeechSynthesizer:
        """The loaded voice (loading it on first use: about a second for Piper)."""
        with self._voice_lock:
            if self._voice is None:
                self._voice = SpeechSynthesizer(self.settings, self.sample_rate)
            return self._voice

    def preload(self) -> None:
        """Start loading the voice now, on a thread of its own, so the first text is not kept waiting for it."""
        threading.Thread(target=lambda: self.voice, name="narrator-load", daemon=True).start()

    def prepare(self, texts: Iterable[str]) -> None:
        """Synthesise the sentences of `texts` in the background and keep them: what a kiosk says often (its
        answers, its greeting) then starts without waiting for the voice. Nothing to do on a stepped clock, where
        waiting for the voice costs no time."""
        if self.blocking:
            return
        sentences = [sentence for text in texts for sentence in pieces(text, self.settings)]
        with self._work_ready:
            self._to_prepare.extend(sentences)
            self._work_ready.notify()
        self._start()

    def speak(self, text: str, stream: SpeechStream) -> Spoken:
        """Synthesise `text` into `stream` (then end it). Raises ValueError for text over the voice's limit and
        RuntimeError when too many texts are waiting."""
        spoken = Spoken(text, time.perf_counter())
        if self.blocking:
            self._synthesise(text, stream, spoken)
            return spoken
        pieces(text, self.settings)  # the checks, at once: the caller learns of bad text, not the log
        with self._work_ready:
            if len(self._texts) >= MAX_WAITING:
                raise RuntimeError(f"busy: {MAX_WAITING} texts are waiting for the voice; retry later, or interrupt")
            self._texts.append((text, stream, spoken))
            self._work_ready.notify()
        self._start()
        return spoken

    def close(self) -> None:
        """Stop the worker after the sentence it is making; texts still waiting are cut."""
        with self._work_ready:
            self._closing = True
            waiting, self._texts = list(self._texts), deque()
            self._work_ready.notify()
        for _, stream, _ in waiting:
            stream.cancel()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=10.0)

    def _start(self) -> None:
        if self._thread is None and not self._closing:
            self._thread = threading.Thread(target=self._work, name="narrator", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        while True:
            with self._work_ready:
                while not (self._texts or self._to_prepare or self._closing):
                    self._work_ready.wait()
                if self._closing:
                    return
                job = self._texts.popleft() if self._texts else None
                sentence = self._to_prepare.popleft() if job is None else None
            if job is not None:
                self._synthesise(*job)
            else:
                self._keep(sentence)

    def _keep(self, sentence: str) -> None:
        if sentence in self._prepared:
            return
        try:
            self._prepared[sentence] = self.voice.synthesize(sentence)
        except Exception:  # synthesised again (and reported) if it is ever said
            log.debug("narrator: could not prepare %r", sentence[:80], exc_info=True)
            return
        while len(self._prepared) > MAX_PREPARED:
            self._prepared.popitem(last=False)

    def _sentences(self, text: str) -> Iterator[tuple[str, np.ndarray]]:
        for sentence in pieces(text, self.settings):
            samples = self._prepared.get(sentence)
            yield sentence, (samples if samples is not None else self.voice.synthesize(sentence))

    def _synthesise(self, text: str, stream: SpeechStream, spoken: Spoken) -> None:
        self.history.append(spoken)
        try:
            for sentence, samples in self._sentences(text):
                if stream.cancelled:
                    break
                if not len(samples):
                    continue
                if spoken.first_audio_s is None:
                    spoken.first_audio_s = time.perf_counter()
                stream.append(samples, text=sentence)
        except StreamClosed:
            pass  # cut while a sentence was being made
        except Exception as error:  # the voice failed: this text ends here, the engine goes on
            spoken.error = f"{type(error).__name__}: {error}"
            log.exception("narrator: could not speak %r", text[:80])
        stream.end()
