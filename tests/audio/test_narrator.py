"""The Narrator speaks text into streams sentence by sentence on its worker: in order, captioned, ended; prepared
sentences are reused; a text to speak goes before sentences being prepared; a cut stream stops the synthesis."""
from __future__ import annotations

import time

import numpy as np
import pytest

from engine.audio.narrator import Narrator
from engine.audio.speak import SpeechSettings
from engine.audio.speech_stream import SpeechStream

ESPEAK = SpeechSettings(voice="espeak")  # fast; the Piper voice is tested in test_speak.py


def wait_for(condition, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "not reached"
        time.sleep(0.01)


@pytest.fixture
def narrator():
    made = Narrator(ESPEAK)
    yield made
    made.close()


def recording_synthesis(narrator: Narrator) -> list[str]:
    """The sentences the voice synthesises, in order, from now on."""
    said: list[str] = []
    synthesize = narrator.voice.synthesize

    def counted(sentence: str) -> np.ndarray:
        said.append(sentence)
        return synthesize(sentence)

    narrator.voice.synthesize = counted
    return said


def test_each_sentence_reaches_the_stream_as_it_is_made_with_its_text(narrator):
    stream = SpeechStream()
    spoken = narrator.speak("Hello there. The cafe is upstairs!", stream)
    wait_for(lambda: stream.ended)
    assert [text for _, text in stream.marks] == ["Hello there.", "The cafe is upstairs!"]
    assert stream.received > 16000 and spoken.first_audio_s >= spoken.asked_s and spoken.error is None


def test_prepared_sentences_are_not_synthesised_again(narrator):
    said = recording_synthesis(narrator)
    narrator.prepare(["Welcome to the museum."])
    wait_for(lambda: said == ["Welcome to the museum."])
    stream = SpeechStream()
    narrator.speak("Welcome to the museum. Enjoy your visit.", stream)
    wait_for(lambda: stream.ended)
    assert said == ["Welcome to the museum.", "Enjoy your visit."]


def test_a_text_to_speak_goes_before_the_sentences_being_prepared(narrator):
    said = recording_synthesis(narrator)
    narrator.prepare([f"Answer number {n}." for n in range(12)])
    stream = SpeechStream()
    narrator.speak("Right now.", stream)
    wait_for(lambda: stream.ended)
    assert said.index("Right now.") <= 1  # at most the sentence being prepared when it came went first


def test_a_cut_stream_stops_the_synthesis_of_the_rest(narrator):
    said = recording_synthesis(narrator)
    stream = SpeechStream()
    stream.cancel()
    narrator.speak("One. Two. Three. Four.", stream)
    wait_for(lambda: stream.ended)
    assert len(said) <= 1 and stream.received == 0


def test_close_cuts_the_texts_still_waiting():
    narrator = Narrator(ESPEAK)
    streams = [SpeechStream() for _ in range(5)]
    for stream in streams:
        narrator.speak("A sentence to say. And another one after it.", stream)
    narrator.close()
    assert all(stream.ended or stream.cancelled for stream in streams[1:])
    assert narrator._thread is None


def test_bad_text_is_refused_at_once(narrator):
    with pytest.raises(ValueError, match="over the limit"):
        narrator.speak("x" * (ESPEAK.max_chars + 1), SpeechStream())
    with pytest.raises(TypeError):
        narrator.speak(42, SpeechStream())
