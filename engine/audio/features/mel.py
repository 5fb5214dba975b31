"""The `mel` extractor: log-mel spectra at 50 Hz with HuBERT's framing (nothing to download)."""
from __future__ import annotations

from typing import Any

import numpy as np

from engine.audio.features import HOP, SAMPLE_RATE, WIN, FeatureExtractor
from engine.audio.settings import MelParams


class MelExtractor(FeatureExtractor):
    """log(max(mel power, floor)) of a Hann-windowed 400-sample frame every 320 samples; no normalisation, since a
    per-utterance one would not be causal (models z-score the features with their training statistics)."""

    id = "mel"

    def __init__(self, params: MelParams = MelParams()) -> None:
        from scipy.signal import get_window
        from transformers.audio_utils import mel_filter_bank

        self._params = params
        self.dim = params.n_mels
        self.context_frames = 0
        self.block_frames = 2
        self.right_frames = 0
        self._window = get_window("hann", WIN).astype(np.float32)
        # [n_fft // 2 + 1, n_mels]
        self._filters = mel_filter_bank(
            num_frequency_bins=params.n_fft // 2 + 1, num_mel_filters=params.n_mels, min_frequency=params.fmin,
            max_frequency=params.fmax, sampling_rate=SAMPLE_RATE, norm="slaney", mel_scale="slaney",
        ).astype(np.float32)

    def params(self) -> dict[str, Any]:
        p = self._params
        return {"n_mels": p.n_mels, "n_fft": p.n_fft, "fmin": p.fmin, "fmax": p.fmax, "floor": p.floor,
                "window": "hann", "scale": "slaney", "log": "natural"}

    def compute(self, windows: np.ndarray) -> np.ndarray:
        """windows [B, (block-1)*HOP + WIN] -> [B, block, n_mels]."""
        frames = np.lib.stride_tricks.sliding_window_view(windows, WIN, axis=1)[:, ::HOP]  # [B, block, WIN]
        spectrum = np.fft.rfft(frames * self._window, n=self._params.n_fft, axis=-1)
        power = (spectrum.real ** 2 + spectrum.imag ** 2).astype(np.float32)
        return np.log(np.maximum(power @ self._filters, self._params.floor)).astype(np.float32)
