"""Listening for the kiosk: utterances found in the microphone stream, and (Listener) the words in them.

`UtteranceDetector.push(mic_block, playback_block)` takes 16 kHz float32 blocks of any size and returns events:
`SpeechStarted` once an onset is certain (the avatar stops talking: barge-in), then `Utterance` (its samples) after
`hangover_s` of silence, or `SpeechCancelled` when the sound was too short to be words. Decisions are made per 10 ms
frame and the partial frame waits for the next block, so any split of a signal into blocks gives the same events.

A frame is voiced when its power is `threshold_db` over the noise floor, tracked by minimum statistics (the lowest
30 ms level of the last `floor_history_s`): pauses in speech keep it down, and a noisier room raises it.

Echo gate: the engine knows what it plays. The avatar's voice reaches the microphone delayed (up to `echo_delay_s`)
and at most `echo_margin_db` louder than played, so the loudest playback power of the last `echo_delay_s`, raised by
that margin and held for a decaying `echo_tail_s` (the room's reverberation), adds to the threshold: the avatar never
triggers itself, a visitor louder than its voice at the microphone does. While the echo could be heard, the noise floor
stands still (the avatar's voice is not room noise).

`Listener` runs a detector in the caller's thread (cheap) and the recognizer on its own thread, so the frame loop never
waits for Whisper: `push()` returns at once and `poll()` hands out the events, `Heard` (the words) among them. It does
not wait for the hangover to start: after `early_s` of silence the detector emits a `Pause` (the utterance so far) and
the Listener recognises it; if the utterance ends in that silence, its words are ready when the hangover is over, or
sooner than from scratch. Speech that goes on makes the pause's words useless, and they are dropped.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.signal import butter, sosfilt, sosfilt_zi

from engine.audio.recognize import SAMPLE_RATE, SamplesError, SpeechRecognizer, Transcript, check_samples

log = logging.getLogger(__name__)

FRAME = 160
"""Samples per decision (10 ms)."""
SMOOTH_FRAMES = 3
"""Frames averaged (in dB) into the level the noise floor is read from (30 ms, as the noise gate)."""
SILENT_DB = -120.0
"""Level given to digital silence."""
HIGHPASS_HZ = 100.0
"""The levels are read above this (2nd-order Butterworth): hum, rumble and a microphone's DC offset are not speech,
and their slow swings would make 10 ms levels jump."""


@dataclass(frozen=True)
class ListenSettings:
    """When sound counts as a visitor's speech, and when an utterance is over."""

    threshold_db: float = 10.0
    """A frame is voiced this far above the noise floor: 10 ms frames of steady noise stay a few dB around their floor
    estimate, while vowels stand 20 dB or more above a room's noise."""
    floor_history_s: float = 1.5
    """The noise floor is the lowest 30 ms level of this much past audio: longer than speech goes without a pause, so
    speech does not raise it; a room that got louder is followed within this time (until then its noise is speech)."""
    floor_range_dbfs: tuple[float, float] = (-70.0, -35.0)
    """The floor estimate stays within these bounds: speech from the very first frame is not taken for noise, and a
    muted microphone's digital silence does not make every faint sound speech."""
    onset_s: float = 0.05
    """Voiced time that makes an onset certain: clicks and knocks are shorter, and barge-in comes this soon."""
    onset_gap_s: float = 0.03
    """An onset not yet certain survives unvoiced gaps this short (a plosive's closure)."""
    hangover_s: float = 0.5
    """Silence that ends an utterance: longer than the pause at a comma in fluent speech, so a question is not cut in
    two and sent to recognition half-said; every 0.1 s more is 0.1 s more before the avatar answers."""
    early_s: float = 0.2
    """Silence after which the Listener starts recognising what was said so far (a Pause), while it waits out the
    hangover: when the utterance does end there, its words are ready sooner (0: recognise at the end only)."""
    pre_roll_s: float = 0.2
    """Audio kept before the first voiced frame: the quiet start of a word ('h', 'f') that did not reach the
    threshold."""
    min_utterance_s: float = 0.2
    """Shorter sounds (a cough, a bump) end as SpeechCancelled, not an utterance to transcribe."""
    max_utterance_s: float = 15.0
    """An utterance is ended here even while speech goes on (a talking crowd, a radio): the answer is not held up
    for ever and memory stays bounded; Whisper reads 30 s at most."""
    echo_margin_db: float = 3.0
    """How much louder than played the avatar's own voice may reach the microphone: 0 dB is a leak as loud as the
    playback; 3 dB leaves room for the room's reflections adding to it. While the avatar talks a visitor must be this
    much louder at the microphone than the avatar's recent playback level; a kiosk whose microphone hears the
    speaker 20 dB down may lower it, so visitors interrupt at a lower voice."""
    echo_delay_s: float = 0.12
    """Longest delay from playing a sample to hearing it (output buffers, the distance to the speaker)."""
    echo_tail_s: float = 0.25
    """After the playback falls quiet its echo threshold decays by 60 dB over this time (the room's reverberation)."""


def frames_of(seconds: float) -> int:
    """Whole 10 ms frames in `seconds` (at least 1)."""
    return max(1, int(math.ceil(seconds * SAMPLE_RATE / FRAME - 1e-9)))


@dataclass(frozen=True)
class SpeechStarted:
    """An onset is certain: someone speaks (sample indices of the input stream)."""

    start: int
    """First sample of the first voiced frame."""
    detected: int
    """The sample at which the onset became certain (what the detector had heard when it said so)."""

    @property
    def start_s(self) -> float:
        return self.start / SAMPLE_RATE

    @property
    def detected_s(self) -> float:
        return self.detected / SAMPLE_RATE


@dataclass(frozen=True)
class SpeechCancelled:
    """The sound that started was shorter than `min_utterance_s`: no utterance follows (the avatar may go on)."""

    start: int
    end: int


@dataclass(frozen=True, eq=False)
class Pause:
    """`early_s` of silence inside an utterance: its audio so far (same fields as Utterance). If the utterance ends
    in this silence, it ends at the same `end`, and the words of the pause are its words."""

    samples: np.ndarray
    first: int
    start: int
    end: int


@dataclass(frozen=True, eq=False)
class Utterance:
    """One stretch of speech: `samples` run from `pre_roll_s` before its onset to the moment it ended."""

    samples: np.ndarray
    first: int
    """Stream index of samples[0]."""
    start: int
    """Onset: first sample of the first voiced frame."""
    end: int
    """End of the last voiced frame."""
    forced: bool = False
    """Ended by `max_utterance_s` rather than by silence."""

    @property
    def start_s(self) -> float:
        return self.start / SAMPLE_RATE

    @property
    def end_s(self) -> float:
        return self.end / SAMPLE_RATE

    @property
    def duration_s(self) -> float:
        return (self.end - self.start) / SAMPLE_RATE


Event = SpeechStarted | SpeechCancelled | Utterance


class Highpass:
    """HIGHPASS_HZ high-pass over a stream, its state carried from block to block (any split: the same samples)."""

    def __init__(self) -> None:
        self._sos = butter(2, HIGHPASS_HZ, "highpass", fs=SAMPLE_RATE, output="sos")
        self._state = sosfilt_zi(self._sos) * 0.0

    def process(self, samples: np.ndarray) -> np.ndarray:
        if not len(samples):
            return np.zeros(0)
        out, self._state = sosfilt(self._sos, samples.astype(np.float64), zi=self._state)
        return out


def frame_powers(samples: np.ndarray) -> np.ndarray:
    """[n * FRAME] -> [n] mean power of each frame."""
    return np.mean(np.square(samples.reshape(-1, FRAME)), axis=1)


def to_db(power: float) -> float:
    return 10.0 * math.log10(power) if power > 0 else SILENT_DB


class UtteranceDetector:
    """Utterances in a 16 kHz stream, fed block by block (see the module's docstring). Not thread-safe."""

    def __init__(self, settings: ListenSettings = ListenSettings()) -> None:
        s = settings
        if s.min_utterance_s > s.max_utterance_s or s.max_utterance_s <= 0 or s.hangover_s <= 0 or s.onset_s <= 0:
            raise ValueError(f"ListenSettings need 0 < onset_s, 0 < hangover_s, min_utterance_s <= max_utterance_s: "
                             f"{s}")
        if s.floor_range_dbfs[0] > s.floor_range_dbfs[1]:
            raise ValueError(f"floor_range_dbfs={s.floor_range_dbfs}: (lowest, highest) expected")
        self.settings = s
        self._onset = frames_of(s.onset_s)
        self._gap = int(round(s.onset_gap_s * 100))
        self._hangover = frames_of(s.hangover_s)
        self._early = int(round(s.early_s * 100)) if 0 < s.early_s < s.hangover_s else 0
        self._min = int(round(s.min_utterance_s * SAMPLE_RATE))
        self._max = frames_of(s.max_utterance_s)
        self._threshold = 10.0 ** (s.threshold_db / 10.0)
        self._margin = 10.0 ** (s.echo_margin_db / 10.0)
        self._decay = 10.0 ** (-6.0 / max(s.echo_tail_s * 100.0, 1e-3))  # 60 dB over the tail
        self.reset()

    def reset(self) -> None:
        """Forget everything heard (a new stream starts at sample 0)."""
        s = self.settings
        self._mic = np.zeros(0, np.float32)
        self._play = np.zeros(0, np.float32)
        self._frame = 0  # index of the next frame
        self._mic_filter, self._play_filter = Highpass(), Highpass()
        self._recent: deque[float] = deque(maxlen=SMOOTH_FRAMES)
        self._smoothed: deque[float] = deque(maxlen=frames_of(s.floor_history_s))
        self._floor_db = s.floor_range_dbfs[0]
        self._played: deque[float] = deque(maxlen=frames_of(s.echo_delay_s) + 1)
        self._echo = 0.0
        self._history: deque[np.ndarray] = deque(maxlen=int(round(s.pre_roll_s * 100)))
        self._audio: list[np.ndarray] | None = None  # frames of the onset forming or the utterance under way
        self._speaking = False
        self._begin = self._voiced = self._last = self._quiet = 0

    @property
    def position(self) -> int:
        """Samples decided on so far (the partial frame waiting for the next block not counted)."""
        return self._frame * FRAME

    @property
    def floor_dbfs(self) -> float:
        """The noise floor now (dBFS)."""
        return self._floor_db

    @property
    def speaking(self) -> bool:
        """An onset was certain and its utterance has not ended."""
        return self._speaking

    def push(self, mic: np.ndarray, playback: np.ndarray | None = None) -> list[Event]:
        """Feed `mic` [n] float32 and what the engine played over the same span (`playback` [n], None: nothing);
        returns the events of the frames now complete."""
        mic = check_samples(mic)
        if playback is None:
            playback = np.zeros(len(mic), np.float32)
        playback = check_samples(playback)
        if len(playback) != len(mic):
            raise SamplesError(f"playback block of {len(playback)} samples for a microphone block of {len(mic)}: "
                               "pass the samples played over the same span (or None)")
        self._mic = np.concatenate([self._mic, mic])
        self._play = np.concatenate([self._play, playback])
        whole = len(self._mic) // FRAME * FRAME
        frames = self._mic[:whole].reshape(-1, FRAME)
        heard = frame_powers(self._mic_filter.process(self._mic[:whole]))
        played = frame_powers(self._play_filter.process(self._play[:whole]))
        self._mic, self._play = self._mic[whole:], self._play[whole:]
        events: list[Event] = []
        for k in range(len(frames)):
            event = self._step(frames[k], float(heard[k]), float(played[k]))
            if event is not None:
                events.append(event)
        return events

    def flush(self) -> list[Event]:
        """The stream ended: an utterance under way ends now (the partial frame is left out)."""
        if self._speaking:
            return [self._end(forced=False)]
        self._audio = None
        return []

    def _is_voiced(self, power: float, played: float) -> bool:
        """Update the echo and noise trackers with one frame; is the frame the visitor's voice?"""
        self._played.append(played)
        self._echo = max(max(self._played), self._echo * self._decay)
        echo = self._echo * self._margin
        floor = 10.0 ** (self._floor_db / 10.0)
        if echo <= floor:  # the avatar is not heard over the room: the frame tells the room's noise
            self._recent.append(to_db(power))
            self._smoothed.append(sum(self._recent) / len(self._recent))
            low, high = self.settings.floor_range_dbfs
            self._floor_db = min(max(min(self._smoothed), low), high)
            floor = 10.0 ** (self._floor_db / 10.0)
        return power > floor * self._threshold + echo

    def _step(self, frame: np.ndarray, power: float, played: float) -> Event | None:
        index = self._frame
        self._frame += 1
        voiced = self._is_voiced(power, played)
        event = None
        if self._audio is None:
            if voiced:
                self._audio = list(self._history)
                self._begin, self._voiced, self._last, self._quiet = index, 0, index, 0
        if self._audio is not None:
            self._audio.append(frame)
            event = self._advance(index, voiced)
        self._history.append(frame)
        return event

    def _advance(self, index: int, voiced: bool) -> Event | None:
        """One frame of an onset forming or an utterance under way."""
        if voiced:
            self._voiced, self._last, self._quiet = self._voiced + 1, index, 0
        else:
            self._quiet += 1
        if not self._speaking:
            if self._quiet > self._gap:
                self._audio = None
            elif self._voiced >= self._onset:
                self._speaking = True
                return SpeechStarted(self._begin * FRAME, (index + 1) * FRAME)
            return None
        if self._quiet >= self._hangover:
            return self._end(forced=False)
        if self._early and self._quiet == self._early and self._last + 1 - self._begin >= self._min // FRAME:
            audio = self._audio or []
            return Pause(np.concatenate(audio), self._frame * FRAME - len(audio) * FRAME, self._begin * FRAME,
                         (self._last + 1) * FRAME)
        if index + 1 - self._begin >= self._max:
            return self._end(forced=True)
        return None

    def _end(self, forced: bool) -> Event:
        audio = self._audio or []
        start, end = self._begin * FRAME, (self._last + 1) * FRAME
        first = self._frame * FRAME - len(audio) * FRAME
        self._audio, self._speaking = None, False
        if end - start < self._min:
            return SpeechCancelled(start, end)
        return Utterance(np.concatenate(audio), first, start, end, forced)


@dataclass(frozen=True, eq=False)
class Heard:
    """The words of one utterance, with when they were said and how long recognising them took. The text is empty
    when Whisper found no speech in it (a noise loud enough to pass for speech)."""

    utterance: Utterance
    transcript: Transcript
    waited_s: float
    """From the utterance's end (the push that ended it) to the start of its recognition (an earlier one running)."""
    latency_s: float
    """From the utterance's end to the words being ready: what the visitor waits beyond the hangover."""

    @property
    def text(self) -> str:
        return self.transcript.text

    @property
    def start_s(self) -> float:
        return self.utterance.start_s

    @property
    def end_s(self) -> float:
        return self.utterance.end_s


class ListenError(RuntimeError):
    """The recognizer failed on the listener's thread (the cause is chained)."""


class Listener:
    """An UtteranceDetector fed by `push()` (any thread; it returns at once) and a recognizer on a worker thread;
    `poll()` returns the events in order: SpeechStarted, SpeechCancelled, Utterance and then its Heard.

    Bounded: at most `max_pending` utterances wait for recognition (a flood drops the oldest, counted in `dropped`),
    and at most `max_events` events wait for `poll()` (the oldest go first). `close()` stops the thread; utterances
    still waiting are not recognised. The recognizer loads on the worker thread, so the first words take longer.
    """

    def __init__(self, recognizer: Any = None, settings: ListenSettings = ListenSettings(), max_pending: int = 4,
                 max_events: int = 32) -> None:
        if max_pending < 1 or max_events < 1:
            raise ValueError(f"max_pending={max_pending}, max_events={max_events}: both must be at least 1")
        self.recognizer = SpeechRecognizer() if recognizer is None else recognizer
        self.detector = UtteranceDetector(settings)
        self.dropped = 0
        self._pending: deque[tuple[Utterance | Pause, float]] = deque()
        self._early: tuple[int, Transcript | None] | None = None
        """(end, words) of the latest Pause: its words, None while they are being recognised."""
        self._awaiting: dict[int, tuple[Utterance, float]] = {}
        """Utterances that ended at a Pause whose words are still being recognised, by their end."""
        self._max_pending = max_pending
        self._events: deque[Any] = deque(maxlen=max_events)
        self._error: BaseException | None = None
        self._closed = False
        self._working = False
        self._push_lock = threading.Lock()
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="listener", daemon=True)
        self._thread.start()

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def push(self, mic: np.ndarray, playback: np.ndarray | None = None) -> None:
        """Feed a microphone block and the playback of the same span (see UtteranceDetector.push)."""
        with self._push_lock:
            if self._closed:
                raise RuntimeError("Listener.push after close()")
            self._emit(self.detector.push(mic, playback))

    def flush(self) -> None:
        """The input ended: an utterance under way ends now and is recognised."""
        with self._push_lock:
            self._emit(self.detector.flush())

    def poll(self) -> list[Any]:
        """The events since the last poll, oldest first. Raises ListenError once if the recognizer failed (the events
        wait for the next poll)."""
        with self._cond:
            error, self._error = self._error, None
            if error is None:
                events = list(self._events)
                self._events.clear()
        if error is not None:
            raise ListenError(f"speech recognition failed: {error}") from error
        return events

    @property
    def busy(self) -> bool:
        """Utterances are waiting for or under recognition."""
        with self._cond:
            return bool(self._pending) or self._working

    def close(self, timeout: float = 10.0) -> None:
        """Stop the worker (after the recognition running now, if any); pending utterances are dropped."""
        with self._cond:
            self._closed = True
            self._pending.clear()
            self._awaiting.clear()
            self._cond.notify_all()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _emit(self, events: list[Event]) -> None:
        if not events:
            return
        now = time.monotonic()
        with self._cond:
            for event in events:
                if isinstance(event, Pause):  # recognised early, in case the utterance ends here
                    self._drop_pauses()
                    self._early = (event.end, None)
                    self._queue(event, now)
                    continue
                self._events.append(event)
                if isinstance(event, Utterance):
                    self._ended(event, now)

    def _ended(self, utterance: Utterance, now: float) -> None:
        """An utterance ended: its words are those of the Pause at its end (ready, or on their way), else queued."""
        early, self._early = self._early, None
        if early is not None and early[0] == utterance.end:
            if early[1] is not None:
                self._events.append(Heard(utterance, early[1], 0.0, 0.0))
                return
            queued = [i for i, (job, _) in enumerate(self._pending) if isinstance(job, Pause) and job.end == early[0]]
            if not queued:  # being recognised now
                self._awaiting[utterance.end] = (utterance, now)
                return
            self._pending[queued[0]] = (utterance, now)  # not started yet: the whole utterance takes its place
            return
        self._drop_pauses()
        self._queue(utterance, now)

    def _drop_pauses(self) -> None:
        """Speech went on after the pauses waiting for recognition: their words are of no use."""
        self._pending = deque(job for job in self._pending if not isinstance(job[0], Pause))

    def _queue(self, utterance: Utterance | Pause, now: float) -> None:
        if len(self._pending) >= self._max_pending:
            old, _ = self._pending.popleft()
            self.dropped += 1
            log.warning("listener: recognition is behind; dropped the utterance at %.2f s", old.start_s)
        self._pending.append((utterance, now))
        self._cond.notify_all()

    def _run(self) -> None:
        try:
            if hasattr(self.recognizer, "load"):
                self.recognizer.load()
        except Exception as error:  # reported by poll(); the thread has nothing to do without a model
            self._fail(error)
            return
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                utterance, ended = self._pending.popleft()
                self._working = True
            self._recognise(utterance, ended)

    def _recognise(self, job: Utterance | Pause, ended: float) -> None:
        began = time.monotonic()
        try:
            transcript = self.recognizer.transcribe(job.samples)
        except Exception as error:
            self._fail(error)
            return
        finally:
            with self._cond:
                self._working = False
        with self._cond:
            if isinstance(job, Pause):
                waiting = self._awaiting.pop(job.end, None)
                if waiting is None:  # the utterance has not ended (yet): keep the words for when it does
                    if self._early is not None and self._early[0] == job.end:
                        self._early = (job.end, transcript)
                    return
                job, ended = waiting
            if not self._closed:
                now = time.monotonic()
                self._events.append(Heard(job, transcript, max(0.0, began - ended), now - ended))

    def _fail(self, error: BaseException) -> None:
        log.error("listener: speech recognition failed: %s", error)
        with self._cond:
            self._error = error
