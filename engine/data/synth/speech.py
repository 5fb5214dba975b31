"""Speech for synthetic subjects: espeak-ng through libespeak-ng (ctypes), with phoneme timings and stress."""
from __future__ import annotations

import ctypes
import ctypes.util
import re
import threading
from dataclasses import dataclass

import numpy as np

from engine.data.synth.config import SynthError

# English voices of espeak-ng 1.51 and the voice variants mixed into them ("en-us+f3").
ENGLISH_VOICES = (
    "en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029", "en-us-nyc",
)
# libespeak-ng looks voices up by file or language name; British English is the file "en", not "en-gb".
_VOICE_ALIASES = {"en-gb": "en"}
VOICE_VARIANTS = ("f1", "f2", "f3", "f4", "f5", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "klatt", "klatt2")

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 1
_POS_CHARACTER = 1
_EVENT_LIST_TERMINATED, _EVENT_WORD, _EVENT_PHONEME = 0, 1, 7
_PARAM_RATE, _PARAM_PITCH, _PARAM_RANGE = 1, 3, 4
_SILENT_PHONEMES = {"", "_", "_:", "_!", "_|", ";", "||", "|"}
# espeak mnemonics of vowels begin with one of these characters (a, e, i, o, u, schwa @, nurse 3, strut V, lot 0).
_VOWEL_START = set("aeiouAEIOU@30V")
_NUCLEUS = re.compile(r"('?)[aeiouAEIOU@30V][aeiouAEIOU@30V:#]*")


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    """espeak_EVENT from speak_lib.h."""

    _fields_ = [
        ("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
        ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p), ("id", _EventId),
    ]


_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class Phoneme:
    """One phoneme of an utterance; times in seconds from the utterance start."""

    start: float
    end: float
    symbol: str  # espeak mnemonic (Kirshenbaum-like ASCII), e.g. "aI", "@", "S"
    stressed: bool  # carries the word's primary stress
    vowel: bool


@dataclass(frozen=True)
class Utterance:
    """A synthesized sentence: mono float32 samples and its phonemes."""

    samples: np.ndarray  # [N] float32 in [-1, 1] at sample_rate
    sample_rate: int
    phonemes: tuple[Phoneme, ...]

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


@dataclass(frozen=True)
class VoiceSettings:
    """espeak-ng voice name (with optional +variant), rate in words per minute, pitch and pitch range 0..100."""

    name: str
    rate: int
    pitch: int
    pitch_range: int


def is_vowel(symbol: str) -> bool:
    return bool(symbol) and symbol[0] in _VOWEL_START


class Espeak:
    """The process-wide libespeak-ng engine (the C library keeps global state, so one lock guards it)."""

    _instance: Espeak | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        try:
            self.lib = ctypes.CDLL(name)
        except OSError as exc:
            raise RuntimeError(
                f"{name}: libespeak-ng is not installed; install it with `apt-get install espeak-ng`"
            ) from exc
        self.lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        self.sample_rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None, _INIT_PHONEME_EVENTS)
        if self.sample_rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed ({self.sample_rate}); check the espeak-ng-data install")
        # TextToPhonemes dereferences the current voice: set one before anything else can call it.
        self.lib.espeak_SetVoiceByName(b"en-us")
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, int, int, str]] = []
        self._callback = _Callback(self._collect)  # kept on self so ctypes does not free it
        self.lib.espeak_SetSynthCallback(self._callback)

    @classmethod
    def get(cls) -> Espeak:
        with cls._lock:
            if cls._instance is None:
                cls._instance = Espeak()
            return cls._instance

    def _collect(self, wav, count, events) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, (count,)).copy())
        index = 0
        while events[index].type != _EVENT_LIST_TERMINATED:
            event = events[index]
            symbol = bytes(event.id.string).split(b"\0")[0].decode("ascii", "replace") if event.type == _EVENT_PHONEME else ""
            self._events.append((event.type, event.text_position, event.length, event.sample, symbol))
            index += 1
        return 0

    def check_voice(self, name: str) -> None:
        """Select voice `name`; raise SynthError naming it and the available English voices if espeak-ng lacks it."""
        base, _, variant = name.partition("+")
        resolved = _VOICE_ALIASES.get(base, base) + (f"+{variant}" if variant else "")
        with self._lock:
            status = self.lib.espeak_SetVoiceByName(resolved.encode()) if name.strip() else -1
        if status != 0:
            raise SynthError(
                f"--voice {name!r}: espeak-ng has no such voice; use one of {', '.join(ENGLISH_VOICES)}, "
                f"optionally with a variant such as '+f3' or '+m2' (variants: {', '.join(VOICE_VARIANTS)}), "
                "or the neural voice 'piper:joe'"
            )

    def word_stress(self, word: str) -> list[bool]:
        """For each vowel of `word` as espeak pronounces it alone: does it carry primary stress (')?"""
        pointer = ctypes.c_char_p(word.encode("utf-8", "ignore"))
        with self._lock:
            phonemes = (self.lib.espeak_TextToPhonemes(ctypes.byref(pointer), 0, 0) or b"").decode("ascii", "replace")
        # A vowel nucleus is a run of vowel characters ("aI", "i:", "aI@"); a ' right before it marks primary stress.
        return [match.group(1) == "'" for match in _NUCLEUS.finditer(phonemes)]

    def synthesize(self, text: str, voice: VoiceSettings) -> Utterance:
        """Speak `text` with `voice`; phoneme times come from espeak's own events (sample accurate)."""
        self.check_voice(voice.name)
        data = text.encode("utf-8")
        with self._lock:
            self._chunks, self._events = [], []
            self.lib.espeak_SetParameter(_PARAM_RATE, int(voice.rate), 0)
            self.lib.espeak_SetParameter(_PARAM_PITCH, int(voice.pitch), 0)
            self.lib.espeak_SetParameter(_PARAM_RANGE, int(voice.pitch_range), 0)
            self.lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, 0, None, None)
            self.lib.espeak_Synchronize()
            chunks, events = self._chunks, self._events
        samples = (np.concatenate(chunks).astype(np.float32) / 32768.0) if chunks else np.zeros(0, np.float32)
        return Utterance(samples, self.sample_rate, self._phonemes(text, events, len(samples)))

    def _phonemes(self, text: str, events, total: int) -> tuple[Phoneme, ...]:
        rate = float(self.sample_rate)
        stress_by_word: dict[int, list[bool]] = {}
        raw: list[tuple[int, str, int]] = []  # (sample, symbol, word text position)
        word_position = -1
        for kind, position, length, sample, symbol in events:
            if kind == _EVENT_WORD:
                word_position = position
                word = text[max(position - 1, 0):max(position - 1, 0) + length]  # positions count characters
                stress_by_word[position] = self.word_stress(word)
            elif kind == _EVENT_PHONEME:
                raw.append((sample, symbol, word_position))
        out: list[Phoneme] = []
        vowel_index: dict[int, int] = {}
        for index, (sample, symbol, word) in enumerate(raw):
            end = raw[index + 1][0] if index + 1 < len(raw) else total
            if symbol in _SILENT_PHONEMES or end <= sample:
                continue
            vowel = is_vowel(symbol)
            stressed = False
            if vowel:
                k = vowel_index.get(word, 0)
                vowel_index[word] = k + 1
                marks = stress_by_word.get(word, [])
                stressed = k < len(marks) and marks[k]
            out.append(Phoneme(sample / rate, end / rate, symbol, stressed, vowel))
        return tuple(out)


def check_voice(name: str) -> None:
    """Raise SynthError naming `name` and the fix unless it is an espeak-ng voice or an installed Piper voice."""
    if name.strip().startswith("piper:"):
        from engine.data.synth import piper  # only Piper voices need the piper package

        piper.check_voice(name)
    else:
        Espeak.get().check_voice(name)


def synthesize(text: str, voice: VoiceSettings) -> Utterance:
    """Speak `text` with an espeak-ng voice, or with a Piper voice ('piper:joe'), with phoneme timings either way."""
    if voice.name.strip().startswith("piper:"):
        from engine.data.synth.piper import PiperSpeaker

        return PiperSpeaker.get(voice.name.strip()).synthesize(text, voice)
    return Espeak.get().synthesize(text, voice)


def parse_voices(spec: str | None) -> tuple[str, ...] | None:
    """'en-us, en-gb-scotland,en-us+f3' -> ('en-us', 'en-gb-scotland', 'en-us+f3'); None (or '') -> None (by seed)."""
    if spec is None or not spec.strip():
        return None
    names = tuple(name.strip() for name in spec.split(","))
    if any(not name for name in names):
        raise SynthError(
            f"--voice {spec!r}: an empty name in the comma-separated list; write e.g. 'en-us,en-gb-scotland,en-us+f3'"
        )
    return names


def choose_voice(rng: np.random.Generator, name: str | None = None) -> VoiceSettings:
    """Per-seed voice: base English voice + variant, speaking rate and pitch, unless `name` pins the voice."""
    if name is None:
        name = f"{rng.choice(ENGLISH_VOICES)}+{rng.choice(VOICE_VARIANTS)}"
    rate = int(rng.integers(135, 191))
    pitch = int(rng.integers(30, 71))
    pitch_range = int(rng.integers(35, 80))
    return VoiceSettings(str(name), rate, pitch, pitch_range)


def choose_voices(rng: np.random.Generator, names: tuple[str, ...] | None = None) -> tuple[VoiceSettings, ...]:
    """One voice by seed (names None), or each named voice with its own rate and pitch drawn in turn from `rng`.

    The first voice takes the same draws as a single voice, so `--voice A` and `--voice A,B` share A's settings.
    """
    if names is None:
        return (choose_voice(rng),)
    return tuple(choose_voice(rng, name) for name in names)


@dataclass(frozen=True)
class Speech:
    """A whole clip of speech with pauses: audio, every phoneme on the clip's clock, and the spoken spans."""

    samples: np.ndarray  # [N] float32 in [-1, 1] at sample_rate, N = seconds * sample_rate
    sample_rate: int
    phonemes: tuple[Phoneme, ...]  # times in seconds from the clip start
    utterances: tuple[tuple[float, float, str], ...]  # (start s, end s, sentence text)
    voices: tuple[VoiceSettings, ...]  # the rotation; sentence i is spoken by voices[utterance_voices[i]]
    utterance_voices: tuple[int, ...]  # [len(utterances)] index into voices

    @property
    def voice(self) -> VoiceSettings:
        """The first (with one voice: the only) voice."""
        return self.voices[0]

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


MIN_GAP_S, MAX_GAP_S = 0.5, 3.0
# Each pause is at least this fraction of the sentence before it, so silence is >= 25% of any clip.
_GAP_PER_SPEECH = 0.35


def resample(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Band-limited resampling by FFT (an ideal low-pass at the lower Nyquist); [N] -> [N * out / in] float32."""
    if rate_in == rate_out or len(samples) == 0:
        return samples.astype(np.float32)
    n_out = int(round(len(samples) * rate_out / rate_in))
    spectrum = np.fft.rfft(samples.astype(np.float64))
    bins = n_out // 2 + 1
    spectrum = spectrum[:bins] if len(spectrum) >= bins else np.pad(spectrum, (0, bins - len(spectrum)))
    return (np.fft.irfft(spectrum, n=n_out) * (n_out / len(samples))).astype(np.float32)


def _trimmed(utterance: Utterance) -> Utterance:
    """Cut espeak's leading and trailing silence to 20 ms / 60 ms around the phonemes."""
    if not utterance.phonemes:
        return utterance
    start = max(utterance.phonemes[0].start - 0.02, 0.0)
    end = min(utterance.phonemes[-1].end + 0.06, utterance.duration)
    rate = utterance.sample_rate
    samples = utterance.samples[int(start * rate):int(end * rate)]
    shift = int(start * rate) / rate
    phonemes = tuple(
        Phoneme(p.start - shift, p.end - shift, p.symbol, p.stressed, p.vowel) for p in utterance.phonemes
    )
    return Utterance(samples, rate, phonemes)


def _jittered(voice: VoiceSettings, rng: np.random.Generator) -> VoiceSettings:
    """Sentence-to-sentence variation of rate and pitch, as a person never says two sentences alike."""
    rate = int(np.clip(voice.rate * rng.uniform(0.9, 1.1), 80, 450))
    pitch = int(np.clip(voice.pitch + rng.integers(-6, 7), 0, 99))
    return VoiceSettings(voice.name, rate, pitch, voice.pitch_range)


def _as_voices(voice: VoiceSettings | tuple[VoiceSettings, ...] | list[VoiceSettings]) -> tuple[VoiceSettings, ...]:
    voices = (voice,) if isinstance(voice, VoiceSettings) else tuple(voice)
    if not voices:
        raise ValueError("compose_speech: no voice given; pass one VoiceSettings or a non-empty sequence of them")
    return voices


def compose_speech(
    sentences: list[str], seconds: float, voice: VoiceSettings | tuple[VoiceSettings, ...],
    rng: np.random.Generator, sample_rate: int = 16000, shuffle: bool = True,
) -> Speech:
    """compose_speech_here in a fresh process, so the same arguments always give the same samples.

    `voice` is one voice, or several that speak successive sentences in turn.

    libespeak-ng carries synthesis state (wave generator phase, C rand()) from one call to the next
    and cannot be re-initialised in a process, so a clip made after other speech would differ.
    """
    import json
    import os
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    voices = _as_voices(voice)
    for one in voices:
        check_voice(one.name)  # fail fast, with the clear message, in this process
    request = {
        "sentences": list(sentences), "seconds": seconds,
        "voices": [[v.name, v.rate, v.pitch, v.pitch_range] for v in voices],
        "rng": rng.bit_generator.state, "sample_rate": sample_rate, "shuffle": shuffle,
    }
    root = str(Path(__file__).resolve().parents[3])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    with tempfile.TemporaryDirectory() as tmp:
        result_path = Path(tmp) / "speech.npz"
        done = subprocess.run(
            [sys.executable, "-m", "engine.data.synth.speech", str(result_path)],
            input=json.dumps(request), text=True, capture_output=True, env=env,
        )
        if done.returncode != 0:
            raise RuntimeError(f"espeak-ng worker failed ({done.returncode}): {done.stderr.strip()[-800:]}")
        with np.load(result_path) as data:
            speech = _speech_from_arrays(data, voices)
    if not speech.utterances:
        raise SynthError(
            f"--seconds {seconds}: no sentence fits between pauses of {MIN_GAP_S} s (the first one takes longer); "
            "use a longer clip or shorter sentences"
        )
    return speech


def _speech_to_arrays(speech: Speech) -> dict[str, np.ndarray]:
    p = speech.phonemes
    return {
        "samples": speech.samples, "sample_rate": np.int64(speech.sample_rate),
        "start": np.array([x.start for x in p], np.float64), "end": np.array([x.end for x in p], np.float64),
        "symbol": np.array([x.symbol for x in p], dtype=str), "stressed": np.array([x.stressed for x in p], bool),
        "vowel": np.array([x.vowel for x in p], bool),
        "utt_start": np.array([u[0] for u in speech.utterances], np.float64),
        "utt_end": np.array([u[1] for u in speech.utterances], np.float64),
        "utt_text": np.array([u[2] for u in speech.utterances], dtype=str),
        "utt_voice": np.array(speech.utterance_voices, np.int64),
    }


def _speech_from_arrays(data, voices: tuple[VoiceSettings, ...]) -> Speech:
    phonemes = tuple(
        Phoneme(float(a), float(b), str(c), bool(d), bool(e))
        for a, b, c, d, e in zip(data["start"], data["end"], data["symbol"], data["stressed"], data["vowel"])
    )
    utterances = tuple((float(a), float(b), str(c)) for a, b, c in zip(data["utt_start"], data["utt_end"], data["utt_text"]))
    utterance_voices = tuple(int(k) for k in data["utt_voice"])
    return Speech(data["samples"].astype(np.float32), int(data["sample_rate"]), phonemes, utterances, voices, utterance_voices)


def _worker_main(result_path: str) -> None:
    """Worker entry (python -m engine.data.synth.speech OUT.npz < request.json): one clip's speech."""
    import json
    import sys

    request = json.loads(sys.stdin.read())
    rng = np.random.default_rng()
    rng.bit_generator.state = request["rng"]
    voices = tuple(VoiceSettings(*v) for v in request["voices"])
    speech = compose_speech_here(
        request["sentences"], request["seconds"], voices, rng, request["sample_rate"], request["shuffle"],
    )
    with open(result_path, "wb") as handle:
        np.savez(handle, **_speech_to_arrays(speech))


def _spread_trailing_silence(placed: list, seconds: float) -> list:
    """If the clip would end in more than 3 s of silence, lengthen the earlier pauses (up to 3 s each) instead."""
    if not placed:
        return placed
    starts = np.array([start for start, _, _ in placed])
    durations = np.array([u.duration for _, u, _ in placed])
    gaps = np.diff(np.concatenate([[0.0], starts])) - np.concatenate([[0.0], durations[:-1]])
    excess = (seconds - starts[-1] - durations[-1]) - 0.8 * MAX_GAP_S
    if excess <= 0 or seconds - starts[-1] - durations[-1] <= MAX_GAP_S:
        return placed
    for _ in range(len(gaps)):
        room = MAX_GAP_S - gaps
        open_ = room > 1e-9
        if excess <= 1e-9 or not open_.any():
            break
        add = np.minimum(room, np.where(open_, excess / open_.sum(), 0.0))
        gaps += add
        excess -= add.sum()
    starts = np.cumsum(gaps + np.concatenate([[0.0], durations[:-1]]))
    return [(float(start), u, text) for start, (_, u, text) in zip(starts, placed)]


def compose_speech_here(
    sentences: list[str], seconds: float, voice: VoiceSettings | tuple[VoiceSettings, ...],
    rng: np.random.Generator, sample_rate: int = 16000, shuffle: bool = True,
) -> Speech:
    """Sentences separated by pauses of 0.5-3 s, filling exactly `seconds`; silence is at least ~25% of it.

    With several voices, sentence i (in the order spoken) takes voices[i % len(voices)], jittered per sentence.

    The clip opens with a pause; a sentence is placed only if it ends at least 0.5 s before the clip
    ends, else the next ones are tried. With shuffle=False (user text) sentences keep their order and
    the text starts over when it runs out.
    """
    voices = _as_voices(voice)
    for one in voices:
        check_voice(one.name)
    order = list(rng.permutation(len(sentences))) if shuffle else list(range(len(sentences)))
    placed: list[tuple[float, Utterance, str]] = []
    placed_voices: list[int] = []
    t = float(rng.uniform(MIN_GAP_S, 1.5))
    cursor = 0
    while t + MIN_GAP_S < seconds and cursor < 4 * len(order) + 8:
        candidates = order[cursor % len(order):] + order[:cursor % len(order)]
        fitted = None
        turn = len(placed) % len(voices)
        for tries, index in enumerate(candidates[:12]):
            utterance = _trimmed(synthesize(sentences[index], _jittered(voices[turn], rng)))
            if utterance.phonemes and t + utterance.duration + MIN_GAP_S <= seconds:
                fitted = (index, utterance, tries)
                break
        if fitted is None:
            break
        index, utterance, tries = fitted
        cursor += tries + 1
        placed.append((t, utterance, sentences[index]))
        placed_voices.append(turn)
        gap = max(MIN_GAP_S + (MAX_GAP_S - MIN_GAP_S) * rng.beta(1.5, 2.5), _GAP_PER_SPEECH * utterance.duration)
        t += utterance.duration + min(gap, MAX_GAP_S)
    placed = _spread_trailing_silence(placed, seconds)
    total = int(round(seconds * sample_rate))
    samples = np.zeros(total, np.float32)
    phonemes: list[Phoneme] = []
    spans: list[tuple[float, float, str]] = []
    for start, utterance, text in placed:
        audio = resample(utterance.samples, utterance.sample_rate, sample_rate)
        first = int(round(start * sample_rate))
        audio = audio[:max(total - first, 0)]
        samples[first:first + len(audio)] += audio
        phonemes.extend(Phoneme(p.start + start, p.end + start, p.symbol, p.stressed, p.vowel) for p in utterance.phonemes)
        spans.append((start, start + utterance.duration, text))
    # A phone's noise floor (about -66 dBFS): real silence is never digital zero.
    samples += rng.normal(0.0, 5e-4, total).astype(np.float32)
    return Speech(np.clip(samples, -1, 1), sample_rate, tuple(phonemes), tuple(spans), voices, tuple(placed_voices))


if __name__ == "__main__":
    import sys as _sys

    _worker_main(_sys.argv[1])
