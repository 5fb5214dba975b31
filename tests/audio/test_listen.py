"""The listening path: onsets found soon after speech starts, one utterance per phrase, the same events for any block
split, the hangover, a noise floor that follows the room, the echo gate both ways, and the Listener's thread."""
from __future__ import annotations

import functools
import threading
import time
from dataclasses import replace

import numpy as np
import pytest
from scipy.signal import fftconvolve

from engine.audio.listen import (
    FRAME, Heard, Listener, ListenError, ListenSettings, Pause, SpeechCancelled, SpeechStarted, Utterance,
    UtteranceDetector,
)
from engine.audio.recognize import SamplesError, Transcript
from engine.audio.sources import StreamResampler
from engine.data.synth.speech import VoiceSettings, synthesize

RATE = 16000
VISITOR = "Excuse me, where are the toilets?"
AVATAR = "Welcome to the museum. The new exhibition opens on the second floor, and the cafe is next to the shop."


@functools.lru_cache(maxsize=None)
def speech(text: str, voice: str = "en-us") -> np.ndarray:
    """`text` spoken by espeak-ng as 16 kHz float32 (peaks near -5 dBFS: a visitor close to the microphone)."""
    spoken = synthesize(text, VoiceSettings(voice, 150, 50, 50))
    resampler = StreamResampler(spoken.sample_rate, RATE)
    return np.concatenate([resampler.process(spoken.samples), resampler.flush()]).astype(np.float32)


def noise(n: int, dbfs: float, seed: int = 0) -> np.ndarray:
    return (10 ** (dbfs / 20) * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def span(samples: np.ndarray) -> tuple[int, int]:
    """First and last sample of a clean recording louder than 2% of its peak: where the speech truly is."""
    loud = np.flatnonzero(np.abs(samples) > 0.02 * np.abs(samples).max())
    return int(loud[0]), int(loud[-1])


def scene(texts: list[str], noise_dbfs: float, gap_s: float = 1.2) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """1 s of room, then each phrase followed by `gap_s` of room; returns the signal and each phrase's true span."""
    parts, spans, at = [np.zeros(RATE, np.float32)], [], RATE
    for text in texts:
        clip = speech(text)
        first, last = span(clip)
        spans.append((at + first, at + last))
        parts += [clip, np.zeros(int(gap_s * RATE), np.float32)]
        at += len(clip) + int(gap_s * RATE)
    signal = np.concatenate(parts)
    return signal + noise(len(signal), noise_dbfs), spans


def feed(detector: UtteranceDetector, mic: np.ndarray, playback: np.ndarray | None = None,
         block: int = 320, pauses: bool = False) -> list:
    """The detector's events for `mic` fed in blocks (Pauses, the hints for early recognition, only if asked)."""
    events = []
    for i in range(0, len(mic), block):
        events += detector.push(mic[i:i + block], None if playback is None else playback[i:i + block])
    return [e for e in events + detector.flush() if pauses or not isinstance(e, Pause)]


def leak(playback: np.ndarray, gain: float, delay_s: float) -> np.ndarray:
    """The avatar's voice as the microphone hears it: delayed, scaled, with a little room reverberation."""
    rng = np.random.default_rng(7)
    delay = int(delay_s * RATE)
    response = np.zeros(delay + int(0.3 * RATE))
    response[delay] = gain
    tail = rng.standard_normal(len(response) - delay - 1) * np.exp(-np.arange(len(response) - delay - 1) / 700)
    response[delay + 1:] = tail / np.sqrt(np.sum(tail ** 2)) * gain * 0.3
    return fftconvolve(playback, response)[:len(playback)].astype(np.float32)


def kinds(events: list) -> list[str]:
    """The events' kinds, leaving out Pauses (hints for early recognition, tested on their own)."""
    return [type(event).__name__ for event in events if not isinstance(event, Pause)]


@pytest.mark.parametrize("noise_dbfs", [-75.0, -45.0])
def test_onset_soon_after_speech_starts(noise_dbfs: float) -> None:
    mic, [(first, last)] = scene([VISITOR], noise_dbfs)
    settings = ListenSettings()
    events = feed(UtteranceDetector(settings), mic)
    assert kinds(events) == ["SpeechStarted", "Utterance"]
    started, utterance = events
    assert abs(started.start - first) <= 0.03 * RATE
    assert 0 < started.detected - first <= 0.1 * RATE
    assert utterance.start == started.start and abs(utterance.end - last) <= 0.07 * RATE
    assert utterance.first == utterance.start - round(settings.pre_roll_s * RATE)
    np.testing.assert_array_equal(utterance.samples, mic[utterance.first:utterance.first + len(utterance.samples)])
    assert not utterance.forced and utterance.duration_s == pytest.approx((utterance.end - utterance.start) / RATE)


def test_one_utterance_per_phrase() -> None:
    texts = ["Where is the nearest exit?", "What is your name?", "How much does a ticket cost for children?"]
    mic, spans = scene(texts, -55.0)
    events = feed(UtteranceDetector(), mic)
    assert kinds(events) == ["SpeechStarted", "Utterance"] * 3
    for utterance, (first, last) in zip(events[1::2], spans):
        assert utterance.start <= first + 0.03 * RATE and utterance.end >= last - 0.07 * RATE
        assert utterance.end_s - utterance.start_s < (last - first) / RATE + 0.2


def _summary(events: list) -> list[tuple]:
    return [(type(e).__name__, e.start, getattr(e, "end", None), getattr(e, "detected", None),
             getattr(e, "first", None), getattr(e, "samples", np.zeros(0)).tobytes()) for e in events]


def test_any_block_split_gives_the_same_events() -> None:
    mic, _ = scene(["Where is the nearest exit?", "What is your name?"], -50.0)
    playback = np.zeros_like(mic)
    playback[: 3 * RATE] = 0.2 * speech(AVATAR)[: 3 * RATE]
    mic[: 3 * RATE] += leak(playback[: 3 * RATE], 0.5, 0.05)
    whole = feed(UtteranceDetector(), mic, playback, block=len(mic), pauses=True)
    rng = np.random.default_rng(5)
    cuts = np.sort(rng.choice(len(mic), 400, replace=False))
    cuts = np.concatenate([cuts[:50], cuts[50:51], cuts[50:]])  # an empty block too
    detector, pieces = UtteranceDetector(), []
    for mic_block, play_block in zip(np.split(mic, cuts), np.split(playback, cuts)):
        pieces += detector.push(mic_block, play_block)
    pieces += detector.flush()
    assert len(whole) >= 4 and _summary(pieces) == _summary(whole)


@pytest.mark.parametrize("pause_s, utterances", [(0.3, 1), (0.8, 2)])
def test_hangover_bridges_pauses_shorter_than_it(pause_s: float, utterances: int) -> None:
    settings = ListenSettings(hangover_s=0.5)
    clips = [speech(text) for text in ("Where is the exit?", "And the shop?")]
    a, b = (clip[span(clip)[0]:span(clip)[1] + 1] for clip in clips)
    quiet = np.zeros(RATE, np.float32)
    mic = np.concatenate([quiet, a, np.zeros(int(pause_s * RATE), np.float32), b, quiet])
    mic += noise(len(mic), -60.0)
    detector = UtteranceDetector(settings)
    ended = []
    for i in range(0, len(mic), FRAME):
        for event in detector.push(mic[i:i + FRAME]):
            if isinstance(event, Utterance):
                ended.append((event, detector.position))
    assert len(ended) == utterances
    for utterance, position in ended:
        assert position - utterance.end == round(settings.hangover_s * RATE)


@pytest.mark.parametrize("noise_dbfs", [-75.0, -40.0])
def test_noise_floor_follows_a_quiet_and_a_noisy_room(noise_dbfs: float) -> None:
    room = noise(3 * RATE, noise_dbfs, seed=3)
    clip = speech(VISITOR)
    mic = np.concatenate([room, clip + noise(len(clip), noise_dbfs, seed=4), room])
    detector = UtteranceDetector()
    assert detector.push(room) == []
    assert detector.floor_dbfs == pytest.approx(max(noise_dbfs, ListenSettings().floor_range_dbfs[0]), abs=4.0)
    events = feed(detector, mic[len(room):])
    assert kinds(events) == ["SpeechStarted", "Utterance"]


def test_a_room_that_gets_louder_is_learnt() -> None:
    """Noise 30 dB louder passes for speech until the floor has caught up (floor_history_s), then never again."""
    settings = ListenSettings()
    step = 2 * RATE
    room = np.concatenate([noise(step, -70.0, seed=1), noise(6 * RATE, -40.0, seed=2)])
    clip = speech(VISITOR)
    mic = np.concatenate([room, clip + noise(len(clip), -40.0, seed=6), noise(RATE, -40.0, seed=7)])
    detector = UtteranceDetector(settings)
    events = feed(detector, mic)
    at_step = [e for e in events if abs(e.start - step) <= 0.05 * RATE]
    later = [e for e in events if e not in at_step]
    ends = [e.end for e in at_step if not isinstance(e, SpeechStarted)]
    assert all(end <= step + (settings.floor_history_s + 0.1) * RATE for end in ends)
    assert kinds(later) == ["SpeechStarted", "Utterance"] and abs(later[0].start - len(room)) < 0.05 * RATE
    assert detector.floor_dbfs == pytest.approx(-40.0, abs=4.0)


def test_clicks_are_ignored_and_short_sounds_cancelled() -> None:
    quiet = noise(RATE, -70.0)
    click = np.concatenate([quiet, 0.5 * np.ones(320, np.float32) * np.sign(noise(320, 0.0)), quiet])
    assert feed(UtteranceDetector(), click) == []
    bump = np.sin(2 * np.pi * 300 * np.arange(int(0.12 * RATE)) / RATE).astype(np.float32) * 0.3
    events = feed(UtteranceDetector(), np.concatenate([quiet, bump, quiet]))
    assert kinds(events) == ["SpeechStarted", "SpeechCancelled"]
    assert isinstance(events[1], SpeechCancelled) and events[1].end - events[1].start < 0.2 * RATE


def test_long_speech_is_cut_at_max_utterance() -> None:
    settings = replace(ListenSettings(), max_utterance_s=1.0)
    clip = speech(AVATAR)
    events = feed(UtteranceDetector(settings), np.concatenate([noise(RATE, -70.0), clip]))
    forced = [e for e in events if isinstance(e, Utterance) and e.forced]
    assert len(forced) >= 3
    for utterance in forced:
        assert utterance.end - utterance.start <= RATE
        assert len(utterance.samples) <= (1.0 + settings.pre_roll_s) * RATE


@pytest.mark.parametrize("gain", [0.5, 1.0])
def test_the_avatars_own_voice_never_starts_speech(gain: float) -> None:
    avatar = speech(AVATAR, "en-us+m3")
    playback = np.concatenate([np.zeros(RATE // 2, np.float32), avatar, np.zeros(RATE, np.float32)])
    for delay_s in (0.0, 0.05, 0.1):
        mic = leak(playback, gain, delay_s) + noise(len(playback), -60.0)
        assert feed(UtteranceDetector(), mic, playback) == [], delay_s
    assert "SpeechStarted" in kinds(feed(UtteranceDetector(), mic))  # without the playback: it would


def test_a_visitor_over_the_avatar_barges_in() -> None:
    avatar = speech(AVATAR, "en-us+m3")
    playback = np.concatenate([np.zeros(RATE // 2, np.float32), avatar])
    visitor = speech(VISITOR)
    at = RATE + RATE // 2
    mic = leak(playback, 0.5, 0.06) + noise(len(playback), -60.0)
    mic[at:at + len(visitor)] += visitor
    first, last = span(visitor)
    events = feed(UtteranceDetector(), mic, playback)
    started = [e for e in events if isinstance(e, SpeechStarted)]
    assert started and at + first - 0.05 * RATE <= started[0].start
    assert started[0].detected <= at + first + 0.5 * RATE
    assert all(e.start < at + last for e in events)


def test_the_echo_fades_after_the_avatar_stops() -> None:
    avatar = speech("The cafe is next to the shop.", "en-us+m3")
    pause = np.zeros(RATE, np.float32)
    playback = np.concatenate([pause, avatar, pause, np.zeros(len(speech(VISITOR)) + RATE, np.float32)])
    mic = leak(playback, 1.0, 0.08) + noise(len(playback), -60.0)
    at = 2 * RATE + len(avatar)
    mic[at:at + len(speech(VISITOR))] += speech(VISITOR)
    events = feed(UtteranceDetector(), mic, playback)
    assert kinds(events) == ["SpeechStarted", "Utterance"]
    assert abs(events[0].start - (at + span(speech(VISITOR))[0])) <= 0.03 * RATE


def test_blocks_are_checked() -> None:
    detector = UtteranceDetector()
    with pytest.raises(SamplesError, match="playback block of 10 samples for a microphone block of 20"):
        detector.push(np.zeros(20, np.float32), np.zeros(10, np.float32))
    with pytest.raises(SamplesError, match="dtype int16"):
        detector.push(np.zeros(20, np.int16))
    with pytest.raises(ValueError, match="min_utterance_s <= max_utterance_s"):
        UtteranceDetector(ListenSettings(min_utterance_s=2.0, max_utterance_s=1.0))


class FakeRecognizer:
    """Says which utterance it heard; can hold each call until released, or fail."""

    def __init__(self, hold: bool = False, fail: bool = False) -> None:
        self.calls = 0
        self.release = threading.Event()
        if not hold:
            self.release.set()
        self.fail = fail

    def transcribe(self, samples: np.ndarray) -> Transcript:
        self.release.wait(10.0)
        self.calls += 1
        if self.fail:
            raise RuntimeError("no model")
        return Transcript(f"utterance {self.calls}", 0.001, len(samples) / RATE, 0.0)


def wait_for(listener: Listener, count: int, timeout: float = 10.0) -> list:
    """Poll until `count` Heard events came (or the time is up); returns all events polled."""
    events: list = []
    deadline = time.monotonic() + timeout
    while sum(isinstance(e, Heard) for e in events) < count and time.monotonic() < deadline:
        events += listener.poll()
        time.sleep(0.01)
    return events


def test_listener_round_trip_and_close() -> None:
    mic, spans = scene(["Where is the nearest exit?", "What is your name?"], -60.0)
    with Listener(FakeRecognizer()) as listener:
        for i in range(0, len(mic), 320):
            listener.push(mic[i:i + 320])
        events = wait_for(listener, 2)
        assert [k for k in kinds(events) if k != "Heard"] == ["SpeechStarted", "Utterance"] * 2
        heard = [e for e in events if isinstance(e, Heard)]
        assert all(events.index(h) > events.index(h.utterance) for h in heard)
        assert [h.text for h in heard] == ["utterance 1", "utterance 2"]
        assert all(h.latency_s >= h.waited_s >= 0 for h in heard)
        assert abs(heard[0].start_s - spans[0][0] / RATE) < 0.05 and heard[1].end_s > heard[1].start_s
        thread = listener._thread
    assert not thread.is_alive()
    with pytest.raises(RuntimeError, match="after close"):
        listener.push(mic[:320])
    listener.close()  # twice is fine


def test_a_flood_of_utterances_stays_bounded() -> None:
    recognizer = FakeRecognizer(hold=True)
    listener = Listener(recognizer, max_pending=2, max_events=8)
    try:
        mic, _ = scene(["Yes."] * 8, -60.0, gap_s=0.8)
        listener.push(mic)
        listener.flush()
        assert len(listener.poll()) <= 8
        assert listener.dropped == 8 - 2  # all came in one push: the last two wait, the worker takes one of them
        recognizer.release.set()
        heard = [e for e in wait_for(listener, 2) if isinstance(e, Heard)]
        assert len(heard) == 2 and recognizer.calls == 2
        assert not listener.busy
    finally:
        listener.close()


def test_a_failing_recognizer_is_reported_once() -> None:
    mic, _ = scene(["Where is the nearest exit?"], -60.0)
    with Listener(FakeRecognizer(fail=True)) as listener:
        listener.push(mic)
        deadline = time.monotonic() + 5.0
        with pytest.raises(ListenError, match="no model"):
            while time.monotonic() < deadline:
                assert all(not isinstance(e, Heard) for e in listener.poll())
                time.sleep(0.01)
        assert not any(isinstance(e, Heard) for e in listener.poll())  # reported once


@pytest.mark.slow
def test_listener_hears_words_with_whisper() -> None:
    mic, _ = scene(["Where is the nearest exit?"], -55.0)
    with Listener() as listener:
        for i in range(0, len(mic), 480):
            listener.push(mic[i:i + 480])
        heard = [e for e in wait_for(listener, 1, timeout=60.0) if isinstance(e, Heard)]
    assert len(heard) == 1 and {"nearest", "exit"} <= set(heard[0].text.lower().strip("?.").split())
    assert heard[0].transcript.seconds > 0 and heard[0].latency_s >= heard[0].transcript.seconds


def test_a_pause_carries_the_utterance_so_far_and_the_end_it_will_have() -> None:
    mic, [(first, last)] = scene([VISITOR], -60.0)
    events = feed(UtteranceDetector(), mic, pauses=True)
    pauses = [e for e in events if isinstance(e, Pause)]
    utterance = events[-1]
    assert isinstance(utterance, Utterance) and pauses and pauses[-1].end == utterance.end
    np.testing.assert_array_equal(pauses[-1].samples, utterance.samples[:len(pauses[-1].samples)])
    assert not feed(UtteranceDetector(ListenSettings(early_s=0.0)), mic, pauses=True).count(Pause)


def test_words_recognised_at_the_pause_are_the_utterances_when_it_ends_there() -> None:
    """Recognition starts at the pause, while the hangover runs: when the utterance ends there, its words are the
    pause's, and nothing is recognised again."""
    mic, _ = scene(["Where is the nearest exit?"], -60.0)
    last_pause = [e for e in feed(UtteranceDetector(), mic, pauses=True) if isinstance(e, Pause)][-1]
    split = last_pause.end + int(0.3 * RATE)  # past the pause, before the hangover ends the utterance
    recognizer = FakeRecognizer()
    with Listener(recognizer) as listener:
        listener.push(mic[:split])
        deadline = time.monotonic() + 10.0
        while listener.busy and time.monotonic() < deadline:
            time.sleep(0.01)
        calls = recognizer.calls
        listener.push(mic[split:])
        heard = [e for e in wait_for(listener, 1) if isinstance(e, Heard)]
    assert calls >= 1 and recognizer.calls == calls
    assert len(heard) == 1 and heard[0].text == f"utterance {calls}" and heard[0].end_s == last_pause.end / RATE
