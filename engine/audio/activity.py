"""Speech activity per video frame from the energy of a recording: which frames hold speech, how loud each is.

Offline measures of whole clips (evaluation, dataset checks), not the live engine's noise gate (engine/audio/gate.py).
"""
from __future__ import annotations

import numpy as np

SPEECH_THRESHOLD_DB = -30.0
"""Default VAD threshold: a frame is speech when its RMS is within 30 dB of the clip's loud level (95th percentile
of frame RMS in dB)."""
SPEECH_FLOOR_DBFS = -60.0
"""Frames quieter than -60 dBFS are never speech, however quiet the whole clip is."""
SPEECH_HANGOVER_S = 0.2
"""A speech run is extended by this much after its last loud frame (the decay of a word; bridges short stops)."""
SPEECH_OVER_NOISE_DB = 10.0
"""A frame is speech only when this far above the clip's noise floor (its 5th-percentile frame level), or half-way
from it to the loud level in noisier clips. Room noise, hiss or hum within 30 dB of the speech would otherwise count
as speech throughout (a clip with 20 dB SNR read as 100% speech)."""


def frame_levels_db(audio: np.ndarray, sample_rate: int, fps: float, frames: int | None) -> np.ndarray:
    """RMS in dBFS of each video frame's span of audio less its DC offset: [N] -> [T]; frames past the audio's end
    are -inf."""
    audio = np.asarray(audio, np.float64).reshape(-1)
    audio = audio - audio.mean() if len(audio) else audio  # a constant offset (cheap microphones) is not loudness
    hop = sample_rate / fps
    if frames is None:
        frames = int(np.ceil(len(audio) / hop))
    out = np.full(frames, -np.inf)
    for t in range(frames):
        chunk = audio[int(round(t * hop)):int(round((t + 1) * hop))]
        if len(chunk):
            out[t] = 10.0 * np.log10(np.mean(chunk ** 2) + 1e-12)
    return out


def loud_and_noise_db(levels: np.ndarray) -> tuple[float, float]:
    """Frame levels [T] dBFS (some finite) -> the clip's loud level (95th percentile) and noise floor (5th), dBFS."""
    finite = levels[np.isfinite(levels)]
    return float(np.percentile(finite, 95.0)), float(np.percentile(finite, 5.0))


def speech_mask(audio: np.ndarray, sample_rate: int, fps: float, frames: int | None = None,
                threshold_db: float = SPEECH_THRESHOLD_DB, hangover_s: float = SPEECH_HANGOVER_S,
                floor_dbfs: float = SPEECH_FLOOR_DBFS, over_noise_db: float = SPEECH_OVER_NOISE_DB) -> np.ndarray:
    """Energy VAD per video frame: audio [N] (mono, at sample_rate) -> bool [T] (T = frames, default the audio's
    length in frames). Levels are RMS less the DC offset. A frame is speech when its level is above the clip's loud
    level (95th-percentile frame level) + threshold_db, above floor_dbfs, and above its noise floor (5th percentile)
    + over_noise_db, or half-way to the loud level when that is nearer (no noise floor when the loud level is within
    over_noise_db / 2 of it: the clip has no quieter part). Each speech run is extended by hangover_s.
    Silence = ~mask."""
    level = frame_levels_db(audio, sample_rate, fps, frames)
    if not np.isfinite(level).any():
        return np.zeros(len(level), bool)
    reference, noise = loud_and_noise_db(level)
    threshold = max(reference + threshold_db, floor_dbfs)
    gap = reference - noise
    if gap >= over_noise_db / 2:  # the clip has quieter parts: the quietest are its noise floor
        threshold = max(threshold, noise + min(over_noise_db, gap / 2))
    loud = level > threshold
    hang = int(round(hangover_s * fps))
    mask = loud.copy()
    for t in np.flatnonzero(loud):
        mask[t:t + hang + 1] = True
    return mask


def speech_envelope(audio: np.ndarray, sample_rate: int, fps: float, frames: int | None = None) -> np.ndarray:
    """Loudness per video frame: audio [N] -> RMS amplitude [T] less the DC offset (linear, same scale as the
    samples)."""
    level = frame_levels_db(audio, sample_rate, fps, frames)
    return np.where(np.isfinite(level), np.sqrt(10.0 ** (level / 10.0)), 0.0)
