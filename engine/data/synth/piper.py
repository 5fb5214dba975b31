"""Neural speech for synthetic subjects: Piper voices ('piper:joe') with phoneme timings; piper loads only when used."""
from __future__ import annotations

import threading

import numpy as np

from engine.audio.speak import PIPER_INSTALL, PIPER_PREFIX, VoiceError, check_piper_voice, load_piper_voice
from engine.data.synth.align import align_phonemes
from engine.data.synth.config import SynthError
from engine.data.synth.speech import Espeak, Phoneme, Utterance, VoiceSettings, is_vowel

INSTALL = PIPER_INSTALL
# Speaking rate (words per minute) at which Piper's length scale is 1; voices' rates scale durations around it.
_NATURAL_RATE_WPM = 175.0
# Piper normalises each sentence to full scale; espeak-ng speaks at about half of it, and the mix should match.
_PEAK = 0.5

# Piper speaks espeak-ng IPA, one code point per token; the visemes read espeak's ASCII mnemonics.
_IPA_TO_MNEMONIC = {
    "ɡ": "g", "θ": "T", "ð": "D", "ʃ": "S", "ʒ": "Z", "ŋ": "N", "ɹ": "r", "ɾ": "t", "ʔ": "?", "ʍ": "W", "ɬ": "l",
    "æ": "a", "ɑ": "A", "ɐ": "a#", "ə": "@", "ɚ": "3", "ɜ": "3", "ɝ": "3", "ʌ": "V", "ɛ": "E", "ɪ": "I",
    "ᵻ": "I", "ɔ": "O", "ɒ": "0", "ʊ": "U",
}
_DIPHTHONGS = {("a", "I"), ("a", "U"), ("e", "I"), ("o", "U"), ("O", "I"), ("e", "@"), ("i", "@"), ("U", "@")}
_STRESS = {"ˈ": True, "ˌ": False}
_LENGTHENING = {"ː", "ˑ", "ʰ", "ʲ", "̃", "̩"}


def check_voice(name: str) -> None:
    """Raise SynthError naming `name` and the fix if it is no Piper voice ('piper:joe', 'piper:PATH.onnx') or piper
    is not installed."""
    try:
        if not name.strip().startswith(PIPER_PREFIX):
            raise VoiceError(f"voice {name!r}: not a Piper voice; use 'piper:joe' or 'piper:PATH.onnx'")
        check_piper_voice(name)
    except VoiceError as exc:
        raise SynthError(f"--{exc}") from exc


def _has_onnx() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnx") is not None


def phonemes_from_alignment(tokens: list[tuple[str, int]], sample_rate: int) -> tuple[Phoneme, ...]:
    """Piper's (IPA token, samples) list -> timed phonemes in espeak mnemonics.

    A stress mark's samples open the phoneme after it (espeak puts the mark before the vowel); length marks
    lengthen the one before, and so do spaces (Piper keeps sounding across word boundaries; a real pause
    comes with punctuation); punctuation and the ^/$ sentence marks are silence.
    """
    out: list[list] = []  # [start, end, symbol, stressed]
    cursor, pending_start, pending_stress = 0, None, False
    for token, samples in tokens:
        start, cursor = cursor, cursor + int(samples)
        if token in _STRESS:
            pending_start = start if pending_start is None else pending_start
            pending_stress = pending_stress or _STRESS[token]
        elif (token in _LENGTHENING or token == " ") and out and out[-1][1] == start:
            out[-1][1] = cursor
        elif token.isalpha() or token in _IPA_TO_MNEMONIC:
            symbol = _IPA_TO_MNEMONIC.get(token, token)
            first = start if pending_start is None else pending_start
            previous = out[-1] if out else None
            if previous and previous[1] == first and (previous[2], symbol) in _DIPHTHONGS:
                previous[1], previous[2] = cursor, previous[2] + symbol
            else:
                out.append([first, cursor, symbol, pending_stress and is_vowel(symbol)])
            pending_start, pending_stress = None, False
        else:
            pending_start, pending_stress = None, False
    return tuple(Phoneme(a / sample_rate, b / sample_rate, s, st, is_vowel(s)) for a, b, s, st in out)


class PiperSpeaker:
    """One loaded Piper voice; timings come from the model's own durations when the onnx package can expose
    them, else from espeak-ng's timed phonemes of the same sentence moved onto Piper's audio by DTW."""

    _instances: dict[str, PiperSpeaker] = {}
    _lock = threading.Lock()

    def __init__(self, name: str) -> None:
        check_voice(name)
        import piper

        self.durations = _has_onnx()  # the model is patched in memory to output durations, using onnx
        self.voice = load_piper_voice(name.strip(), alignments=self.durations)
        self.config_cls = piper.SynthesisConfig

    @classmethod
    def get(cls, name: str) -> PiperSpeaker:
        with cls._lock:
            if name not in cls._instances:
                cls._instances[name] = PiperSpeaker(name)
            return cls._instances[name]

    def synthesize(self, text: str, voice: VoiceSettings) -> Utterance:
        """Speak `text` at `voice.rate` (Piper has no pitch control; pitch is ignored). Deterministic: no noise."""
        config = self.config_cls(length_scale=_NATURAL_RATE_WPM / voice.rate, noise_scale=0.0, noise_w_scale=0.0)
        rate = self.voice.config.sample_rate
        chunks = list(self.voice.synthesize(text, config, include_alignments=self.durations))
        pieces = [chunk.audio_float_array * _PEAK for chunk in chunks]
        samples = np.concatenate(pieces).astype(np.float32) if pieces else np.zeros(0, np.float32)
        if chunks and all(chunk.phoneme_alignments for chunk in chunks):
            tokens = [(a.phoneme, a.num_samples) for chunk in chunks for a in chunk.phoneme_alignments]
            return Utterance(samples, rate, phonemes_from_alignment(tokens, rate))
        return Utterance(samples, rate, self._aligned_by_dtw(text, voice, samples, rate))

    @staticmethod
    def _aligned_by_dtw(text: str, voice: VoiceSettings, samples: np.ndarray, rate: int) -> tuple[Phoneme, ...]:
        # The same words from espeak-ng at the same rate carry sample-accurate timings to move onto Piper's audio.
        reference = Espeak.get().synthesize(text, VoiceSettings("en-us", voice.rate, 50, 50))
        return align_phonemes(reference.samples, reference.sample_rate, reference.phonemes, samples, rate)
