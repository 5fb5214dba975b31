"""The whisper extractor: Whisper tiny.en's encoder on 1 s windows, streaming equal to offline, silence on its floor,
a stored spec that gives back its settings, and a clear error without the model."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from engine.audio.features import FeatureMismatchError, feature_spec, make_extractor, settings_for
from engine.audio.settings import AudioSettings, WhisperParams
from engine.audio.streaming import FeatureStream, offline_windows

WHISPER = AudioSettings(extractor="whisper")


@pytest.fixture(scope="module")
def whisper():
    return make_extractor(WHISPER)


def _speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    """Voiced sound with a moving pitch and two formant-like bands, loud and soft by syllable."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    pitch = 120 + 40 * np.sin(2 * np.pi * 0.5 * t)
    voice = sum(np.sin(2 * np.pi * k * np.cumsum(pitch) / 16000) / k for k in range(1, 12))
    envelope = np.clip(np.sin(2 * np.pi * 2.5 * t), 0, None)
    return (0.1 * envelope * voice + 0.001 * rng.standard_normal(len(t))).astype(np.float32)


def test_whisper_streaming_equals_offline(whisper) -> None:
    audio = _speechlike(2.5)
    stream = FeatureStream(whisper, 16, 2, 25.0, gate=WHISPER.gate)
    rng = np.random.default_rng(3)
    emitted, start = [], 0
    while start < len(audio):
        n = int(rng.integers(1, 2500))
        stream.push(audio[start:start + n])
        emitted += stream.pull()
        start += n
    offline = offline_windows(whisper, audio, 16, 2, 25.0, gate=WHISPER.gate)
    assert offline.shape[1:] == (16, 384) and len(emitted) == len(offline)
    np.testing.assert_array_equal(np.stack([w for _, _, w in emitted]), offline)


def test_pauses_sit_on_the_floor_and_speech_does_not(whisper) -> None:
    """Digital silence and a quiet room (-90 dBFS) give the same features; speech moves them."""
    n = whisper.window_samples
    quiet = (10 ** (-90 / 20) * np.random.default_rng(0).standard_normal(n)).astype(np.float32)
    speech = _speechlike(n / 16000 + 0.01)[:n]
    silent, room, spoken = whisper.compute(np.stack([np.zeros(n, np.float32), quiet, speech]))
    np.testing.assert_array_equal(silent, room)
    assert np.abs(spoken - silent).mean() > 10 * np.abs(silent - room).mean() + 0.1
    mel = whisper.log_mel(np.zeros((1, n), np.float32))
    assert mel.shape == (1, 80, 2 * (whisper.context_frames + whisper.block_frames))
    assert np.all(mel == (WhisperParams().floor_log10 + 4.0) / 4.0)


def test_the_stored_spec_gives_back_the_settings(whisper) -> None:
    settings = replace(WHISPER, whisper=WhisperParams(context_frames=50, floor_log10=-5.5), lookahead_frames=3)
    spec = feature_spec(settings, make_extractor(settings))
    assert spec.params["weights"] and spec.dim == 384
    assert settings_for(spec) == settings
    with pytest.raises(FeatureMismatchError, match="floor_log10"):
        feature_spec(WHISPER, whisper).check(spec.to_dict(), "motion.safetensors")


def test_a_missing_model_names_the_folder_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no-model.*model\.bin.*extractor='mel'"):
        make_extractor(replace(WHISPER, whisper=WhisperParams(model=str(tmp_path / "no-model"))))
