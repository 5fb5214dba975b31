"""Helpers for the audio tests: real audio files written with PyAV, tones, spectral peaks."""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np

_CODECS = {"wav": ("pcm_s16le", "s16"), "flac": ("flac", "s16"), "mp3": ("libmp3lame", "fltp")}


def write_audio(path: Path, samples: np.ndarray, rate: int) -> Path:
    """Encode samples [channels, n] in [-1, 1] into `path` (format from the suffix: wav, flac or mp3)."""
    codec, fmt = _CODECS[path.suffix.lstrip(".")]
    layout = "mono" if samples.shape[0] == 1 else "stereo"
    if fmt == "s16":
        data = (np.clip(samples, -1, 1) * 32767).astype(np.int16).T.reshape(1, -1)
    else:
        data = np.ascontiguousarray(samples, dtype=np.float32)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(data, format=fmt, layout=layout)
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def tone(freq: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    """A sine [n] at `rate`."""
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(int(seconds * rate)) / rate)).astype(np.float32)


def peak_hz(samples: np.ndarray, rate: int = 16000) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * rate / len(samples))
