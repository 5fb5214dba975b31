"""Phoneme timings carried from one recording of a sentence to another by DTW on MFCC frames."""
from __future__ import annotations

import numpy as np

from engine.data.synth.speech import Phoneme, resample

ALIGN_RATE = 16000  # Hz both signals are compared at
HOP_S = 0.005  # frame step; a 5 ms grid keeps the quantisation well under the 20 ms we promise
WINDOW_S = 0.025
N_MELS, N_MFCC = 40, 13


def _mel_filters(n_fft: int, rate: int, n_mels: int) -> np.ndarray:
    """Triangular filters on the mel scale, [n_mels, n_fft // 2 + 1]."""
    mel = lambda hz: 2595.0 * np.log10(1.0 + hz / 700.0)  # noqa: E731
    hz = lambda m: 700.0 * (10.0 ** (m / 2595.0) - 1.0)  # noqa: E731
    edges = hz(np.linspace(mel(60.0), mel(rate / 2 - 200.0), n_mels + 2))
    bins = np.fft.rfftfreq(n_fft, 1.0 / rate)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    return np.maximum(0.0, np.minimum((bins - lower) / (centre - lower), (upper - bins) / (upper - centre)))


def mfcc_frames(samples: np.ndarray, rate: int) -> np.ndarray:
    """MFCC 1..12 of [N] samples, one frame per HOP_S centred on k * HOP_S, normalised per utterance: [T, 12].

    c0 (loudness) is dropped and each coefficient is standardised over the utterance, so two speakers
    differ less in level and vocal tract and more in what they say, which is what DTW should follow.
    """
    from scipy.fft import dct

    x = resample(samples, rate, ALIGN_RATE).astype(np.float64)
    hop, window = int(HOP_S * ALIGN_RATE), int(WINDOW_S * ALIGN_RATE)
    n_fft = 1 << (window - 1).bit_length()
    x = np.pad(x, (window // 2, window))
    count = max((len(x) - window) // hop, 1)
    frames = np.lib.stride_tricks.sliding_window_view(x, window)[::hop][:count] * np.hanning(window)
    power = np.abs(np.fft.rfft(frames, n_fft)) ** 2
    log_mel = np.log(power @ _mel_filters(n_fft, ALIGN_RATE, N_MELS).T + 1e-8)
    cepstra = dct(log_mel, type=2, norm="ortho", axis=1)[:, 1:N_MFCC]
    return (cepstra - cepstra.mean(0)) / (cepstra.std(0) + 1e-6)


def dtw_path(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cheapest monotonic path from (0, 0) to (len(a)-1, len(b)-1) through Euclidean frame distances: [L, 2] int."""
    cost = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
    n, m = cost.shape
    total = np.full((n + 1, m + 1), np.inf)
    total[0, 0] = 0.0
    # Cells on one anti-diagonal (i + j = d) depend only on the two before it, so each diagonal is one numpy step.
    for d in range(2, n + m + 1):
        i = np.arange(max(1, d - m), min(n, d - 1) + 1)
        j = d - i
        best = np.minimum(np.minimum(total[i - 1, j - 1], total[i - 1, j]), total[i, j - 1])
        total[i, j] = cost[i - 1, j - 1] + best
    path = [(n - 1, m - 1)]
    i, j = n, m
    while (i, j) != (1, 1):
        steps = ((i - 1, j - 1), (i - 1, j), (i, j - 1))
        i, j = min((s for s in steps if s[0] >= 1 and s[1] >= 1), key=lambda s: total[s])
        path.append((i - 1, j - 1))
    return np.array(path[::-1])


def align_phonemes(
    reference: np.ndarray, reference_rate: int, phonemes: tuple[Phoneme, ...], target: np.ndarray, target_rate: int,
) -> tuple[Phoneme, ...]:
    """`phonemes`, timed on `reference` [N] samples, re-timed onto `target` [M] samples of the same words.

    Each phoneme boundary moves to where the DTW path between the two MFCC sequences sends its frame. Where the
    path dwells on one reference frame over several target frames (a pause or sound only the target has), a
    phoneme starts at the dwell's last frame and ends at its first, leaving the extra sound between phonemes.
    """
    path = dtw_path(mfcc_frames(reference, reference_rate), mfcc_frames(target, target_rate))
    ref_frames, first_index = np.unique(path[:, 0], return_index=True)
    last_index = np.append(first_index[1:] - 1, len(path) - 1)
    first, last = path[first_index, 1], path[last_index, 1]
    duration = len(target) / target_rate

    def move(t: float, frames: np.ndarray) -> float:
        return float(np.clip(np.interp(t / HOP_S, ref_frames, frames) * HOP_S, 0.0, duration))

    out = []
    for p in phonemes:
        start, end = move(p.start, last), move(p.end, first)
        out.append(Phoneme(start, max(end, start + 1e-3), p.symbol, p.stressed, p.vowel))
    return tuple(out)
