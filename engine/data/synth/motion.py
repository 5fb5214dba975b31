"""Non-verbal motion of the synthetic presenter: blinks, brows, head pose from speech, shoulders following."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.data.synth.rig import BS, BLENDSHAPE_NAMES
from engine.data.synth.speech import Phoneme

SPEAKING_PAUSE_S = 0.15  # a pause inside a sentence at least this long counts as not speaking


@dataclass(frozen=True)
class Style:
    """Per-subject motion temperament."""

    blinks_per_minute: float
    expressiveness: float  # gain on speech-driven head motion
    articulation: float  # gain on viseme targets
    brow_emphasis: float  # probability that a stressed syllable lifts the brows
    base_euler_deg: tuple[float, float, float]  # resting roll, pitch, yaw


def choose_style(rng: np.random.Generator) -> Style:
    return Style(
        blinks_per_minute=float(rng.uniform(11.0, 23.0)), expressiveness=float(rng.uniform(0.7, 1.35)),
        articulation=float(rng.uniform(0.85, 1.15)), brow_emphasis=float(rng.uniform(0.25, 0.6)),
        base_euler_deg=(float(rng.uniform(-3, 3)), float(rng.uniform(-4, 4)), float(rng.uniform(-7, 7))),
    )


def speaking_mask(phonemes: tuple[Phoneme, ...], frames: int, fps: float) -> np.ndarray:
    """[frames] bool: the frame centre lies within speech (pauses >= 0.15 s between phonemes excluded)."""
    times = (np.arange(frames) + 0.5) / fps
    mask = np.zeros(frames, bool)
    if not phonemes:
        return mask
    spans = []
    start, end = phonemes[0].start, phonemes[0].end
    for phoneme in phonemes[1:]:
        if phoneme.start - end >= SPEAKING_PAUSE_S:
            spans.append((start, end))
            start = phoneme.start
        end = max(end, phoneme.end)
    spans.append((start, end))
    for a, b in spans:
        mask |= (times >= a) & (times < b)
    return mask


def audio_features(samples: np.ndarray, sample_rate: int, frames: int, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Per video frame: loudness in dBFS [frames] and F0 in Hz [frames] (0 where unvoiced)."""
    hop = sample_rate / fps
    window = int(0.04 * sample_rate)
    padded = np.concatenate([np.zeros(window), samples, np.zeros(window)])
    starts = (np.arange(frames) * hop + hop / 2 - window / 2 + window).astype(int)
    chunks = padded[starts[:, None] + np.arange(window)[None]]
    rms = np.sqrt(np.mean(chunks ** 2, axis=1) + 1e-12)
    loudness = 20 * np.log10(rms)
    # Autocorrelation pitch over 70-400 Hz; a normalised peak above 0.5 counts as voiced.
    chunks = chunks - chunks.mean(axis=1, keepdims=True)
    spectrum = np.fft.rfft(chunks * np.hanning(window), n=2 * window, axis=1)
    ac = np.fft.irfft(np.abs(spectrum) ** 2, axis=1)[:, :window]
    ac /= np.maximum(ac[:, :1], 1e-12)
    lo, hi = int(sample_rate / 400), int(sample_rate / 70)
    lag = lo + np.argmax(ac[:, lo:hi], axis=1)
    peak = ac[np.arange(frames), lag]
    f0 = np.where((peak > 0.5) & (loudness > -45), sample_rate / lag, 0.0)
    return loudness, f0


def _smooth(x: np.ndarray, sigma_frames: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter1d

    return gaussian_filter1d(np.asarray(x, np.float64), sigma_frames, axis=0, mode="nearest")


def blink_track(frames: int, fps: float, per_minute: float, rng: np.random.Generator) -> tuple[np.ndarray, list]:
    """[frames] eyelid closure 0..1 and the list of (start s, duration s) blinks.

    Intervals are gamma distributed (shape 3, so blinks are neither metronomic nor clumped) with a
    mean of 60/per_minute s; each blink lasts 100-300 ms, closing in about a third of it.
    """
    mean = 60.0 / per_minute
    duration_s = frames / fps
    blinks, t = [], float(rng.uniform(0.3, mean))
    while t < duration_s:
        length = float(rng.uniform(0.1, 0.3))
        blinks.append((t, length))
        if rng.uniform() < 0.08:  # an occasional double blink
            blinks.append((t + length + 0.12, float(rng.uniform(0.1, 0.2))))
        t += length + max(0.6, float(rng.gamma(3.0, mean / 3.0)))
    fine = 1000.0
    grid = np.arange(int(duration_s * fine) + 1) / fine
    closure = np.zeros_like(grid)
    for start, length in blinks:
        close = 0.35 * length
        rel = grid - start
        shape = np.where(rel < close, rel / close, 1.0 - (rel - close) / (length - close))
        closure = np.maximum(closure, np.where((rel >= 0) & (rel <= length), np.clip(shape, 0, 1), 0.0))
    # A frame integrates its exposure (1/fps), as a camera's shutter does.
    per_frame = closure[: int(frames * fine / fps)].reshape(frames, -1).mean(axis=1) if frames else closure[:0]
    return np.clip(per_frame * 1.3, 0, 1), [(s, l) for s, l in blinks if s < duration_s]


def brow_track(phonemes: tuple[Phoneme, ...], f0_hz: np.ndarray, frames: int, fps: float, style: Style,
               rng: np.random.Generator) -> np.ndarray:
    """[frames, 3] browInnerUp, browOuterUpLeft, browOuterUpRight: lifts on some stressed syllables."""
    impulses = np.zeros(frames)
    voiced = f0_hz[f0_hz > 0]
    median_f0 = float(np.median(voiced)) if len(voiced) else 0.0
    for phoneme in phonemes:
        if not phoneme.stressed:
            continue
        index = min(int(phoneme.start * fps), frames - 1)
        high = median_f0 > 0 and f0_hz[index] > median_f0
        if rng.uniform() < style.brow_emphasis * (1.5 if high else 0.7):
            impulses[index] = max(impulses[index], rng.uniform(0.35, 0.85))
    # Quick rise (~80 ms), slow fall (~400 ms).
    kernel_t = np.arange(int(0.9 * fps)) / fps
    kernel = (1 - np.exp(-kernel_t / 0.06)) * np.exp(-kernel_t / 0.35)
    kernel /= kernel.max()
    lift = np.clip(np.convolve(impulses, kernel)[:frames], 0, 1)
    asymmetry = rng.uniform(-0.15, 0.15)
    return np.stack([lift * 0.8, lift * (1 + asymmetry), lift * (1 - asymmetry)], 1)


def _ou(frames: int, fps: float, tau_s: float, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """[frames] smooth Ornstein-Uhlenbeck noise with stationary deviation `sigma`.

    A raw OU path is rough at every frame (about 30 deg/s of jitter for head angles); heads move
    smoothly, so the path is low-passed (~0.2 s) and rescaled to keep its deviation.
    """
    dt = 1.0 / fps
    decay = np.exp(-dt / tau_s)
    noise = rng.normal(0, 1, frames)
    out = np.zeros(frames)
    x = 0.0
    for i in range(frames):
        x = decay * x + sigma * np.sqrt(1 - decay * decay) * noise[i]
        out[i] = x
    smooth = _smooth(out, 0.2 * fps)
    return smooth * (out.std() / max(smooth.std(), 1e-9))


@dataclass(frozen=True)
class PoseTracks:
    """Per-frame rigid motion, camera space: head and torso (roll, pitch, yaw) degrees and offsets in cm."""

    head_euler: np.ndarray  # [T, 3]
    head_offset: np.ndarray  # [T, 3] added to the rest head position
    torso_euler: np.ndarray  # [T, 3]
    torso_offset: np.ndarray  # [T, 3]


def pose_tracks(loudness: np.ndarray, f0_hz: np.ndarray, speaking: np.ndarray, phonemes: tuple[Phoneme, ...],
                fps: float, style: Style, rng: np.random.Generator) -> PoseTracks:
    """Head motion that grows with speech energy and pitch and settles in silence; shoulders follow partly.

    Pitch (nod) rises with F0 and dips on stressed syllables; yaw and roll wander with an amplitude
    gated by speaking activity; the torso follows the head's yaw/roll/sway at a third, 300 ms late.
    """
    frames = len(loudness)
    activity = np.clip(_smooth(speaking.astype(float), 0.25 * fps), 0, 1)
    voiced = f0_hz > 0
    if voiced.any():
        log_f0 = np.log(np.where(voiced, f0_hz, 1.0))
        centre, spread = np.median(log_f0[voiced]), max(np.std(log_f0[voiced]), 1e-3)
        pitch_z = np.where(voiced, (log_f0 - centre) / spread, 0.0)
    else:
        pitch_z = np.zeros(frames)
    pitch_z = _smooth(np.clip(pitch_z, -2.5, 2.5), 0.08 * fps)
    energy = np.clip((loudness + 50.0) / 35.0, 0, 1) * speaking
    energy = _smooth(energy, 0.1 * fps)
    gain = style.expressiveness
    # The wander's deviation itself shrinks in pauses (not only its noise), so the head settles toward rest
    # within ~0.3 s of silence instead of holding the last speech pose: calm, never frozen.
    amplitude = 0.3 + 0.7 * activity
    nods = np.zeros(frames)
    for phoneme in phonemes:
        if phoneme.stressed:
            nods[min(int(phoneme.start * fps), frames - 1)] += rng.uniform(0.5, 1.0)
    kernel_t = np.arange(int(0.6 * fps)) / fps
    nod_kernel = np.sin(np.pi * np.clip(kernel_t / 0.35, 0, 1)) * (kernel_t < 0.35)
    nods = np.convolve(nods, nod_kernel)[:frames]
    roll0, pitch0, yaw0 = style.base_euler_deg
    yaw = yaw0 + gain * (amplitude * _ou(frames, fps, 1.8, 6.0, rng)
                         + 2.5 * _smooth(energy, 0.5 * fps) * np.sign(yaw0 + 1e-3))
    pitch = pitch0 + gain * (-2.2 * pitch_z * activity + 1.6 * nods + amplitude * _ou(frames, fps, 1.2, 2.5, rng))
    roll = roll0 + gain * (amplitude * _ou(frames, fps, 2.2, 2.2, rng) + 0.12 * (yaw - yaw0))
    head_euler = np.stack([roll, pitch, yaw], 1)
    lean = 1.2 * energy  # toward the camera when speaking up
    sway = gain * amplitude * _ou(frames, fps, 2.5, 0.8, rng)
    bob = -0.25 * nods * gain
    head_offset = np.stack([sway, bob, lean], 1)
    lag = max(int(0.3 * fps), 1)
    follow = np.concatenate([np.repeat(head_euler[:1], lag, 0), head_euler[:-lag]])
    breathing = 0.25 * np.sin(2 * np.pi * np.arange(frames) / fps / rng.uniform(3.5, 5.0) + rng.uniform(0, 6.3))
    torso_euler = np.stack([
        0.3 * (follow[:, 0] - roll0), np.zeros(frames), 0.35 * (follow[:, 2] - yaw0) + 0.4 * yaw0,
    ], 1)
    torso_euler = _smooth(torso_euler, 0.1 * fps)
    torso_offset = np.stack([0.4 * sway, breathing, 0.4 * lean], 1)
    return PoseTracks(head_euler, head_offset, torso_euler, torso_offset)


def expression_tracks(mouth: np.ndarray, blink: np.ndarray, brows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Combine mouth [T, K], blink [T] and brows [T, 3] into blendshapes [T, K] (BLENDSHAPE_NAMES order)."""
    out = mouth.copy()
    asymmetry = rng.uniform(0.9, 1.0)
    out[:, BS["eyeBlinkLeft"]] = blink
    out[:, BS["eyeBlinkRight"]] = blink * asymmetry
    out[:, BS["browInnerUp"]] = np.maximum(out[:, BS["browInnerUp"]], brows[:, 0])
    out[:, BS["browOuterUpLeft"]] = np.maximum(out[:, BS["browOuterUpLeft"]], brows[:, 1])
    out[:, BS["browOuterUpRight"]] = np.maximum(out[:, BS["browOuterUpRight"]], brows[:, 2])
    return np.clip(out, 0, 1).astype(np.float32)


__all__ = [
    "BLENDSHAPE_NAMES", "PoseTracks", "Style", "audio_features", "blink_track", "brow_track", "choose_style",
    "expression_tracks", "pose_tracks", "speaking_mask",
]
