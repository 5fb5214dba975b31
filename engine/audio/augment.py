"""Speech augmentation for training: the same words at another level and over a noise floor.

A model trained only on a dataset's clean track learns its exact loudness and silence. Live, a microphone brings
its own gain and room noise; a motion syncer that never heard either reads noise as speech (on held-out synthetic
speech with white noise at -40 dBFS the head moved 4 degrees in the pauses, as much as while talking).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SpeechAugment:
    """Ranges the random copies are drawn from (uniform in dB)."""

    gain_db: tuple[float, float] = (-18.0, 6.0)
    """Level change of the whole clip (peaks are kept below full scale)."""
    snr_db: tuple[float, float] = (5.0, 40.0)
    """Speech-to-noise ratio of the added noise, against the clip's speech level (its loud frames)."""
    noisy_fraction: float = 0.75
    """Share of copies with noise added; the others only change level."""


NOISE_COLOURS = ("white", "pink", "brown")


def coloured_noise(samples: int, colour: str, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise [samples] whose power falls as 1/f^0 (white), 1/f (pink) or 1/f^2 (brown)."""
    exponent = {"white": 0.0, "pink": 1.0, "brown": 2.0}[colour]
    spectrum = np.fft.rfft(rng.standard_normal(samples))
    f = np.arange(len(spectrum), dtype=np.float64)
    f[0] = 1.0
    noise = np.fft.irfft(spectrum / f ** (exponent / 2.0), samples)
    noise -= noise.mean()
    return (noise / max(float(np.sqrt(np.mean(noise ** 2))), 1e-12)).astype(np.float32)


def speech_level(audio: np.ndarray, frame: int = 320) -> float:
    """RMS of the loudest fifth of 20 ms frames of audio [N] (the level of the speech, not of the pauses)."""
    usable = len(audio) // frame * frame
    if usable == 0:
        return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if len(audio) else 0.0
    power = np.mean(np.square(audio[:usable].reshape(-1, frame), dtype=np.float64), 1)
    return float(np.sqrt(np.mean(np.sort(power)[int(0.8 * len(power)):])))


def augment_speech(audio: np.ndarray, rng: np.random.Generator, spec: SpeechAugment = SpeechAugment()) -> np.ndarray:
    """One random copy of audio [N] (float, full scale 1): another gain and, usually, a coloured noise floor."""
    audio = np.asarray(audio, np.float32)
    out = audio * np.float32(10.0 ** (rng.uniform(*spec.gain_db) / 20.0))
    if rng.uniform() < spec.noisy_fraction:
        level = speech_level(out) * 10.0 ** (-rng.uniform(*spec.snr_db) / 20.0)
        out = out + np.float32(level) * coloured_noise(len(out), str(rng.choice(NOISE_COLOURS)), rng)
    peak = float(np.max(np.abs(out))) if len(out) else 0.0
    return out / np.float32(peak / 0.99) if peak > 0.99 else out


def augmented_copies(audio: np.ndarray, copies: int, seed: int = 0,
                     spec: SpeechAugment = SpeechAugment()) -> list[np.ndarray]:
    """`copies` random versions of audio [N], reproducible from `seed` (what the trainers hear beside the recording)."""
    rng = np.random.default_rng(seed)
    return [augment_speech(audio, rng, spec) for _ in range(copies)]
