"""Speech activity of whole clips: the energy VAD and envelope that evaluation and the dataset checks use."""
import math

import numpy as np
import pytest

from engine.audio import activity


def test_speech_mask_on_tone_and_silence():
    rate, fps = 16000, 25.0
    t = np.arange(rate) / rate
    tone = 0.3 * np.sin(2 * np.pi * 250 * t)  # 10 periods per 40 ms frame
    hiss = 1e-4 * np.random.default_rng(2).standard_normal(rate)  # -83 dBFS: silence
    quiet = 0.003 * np.sin(2 * np.pi * 250 * t)  # 40 dB under the tone: below the -30 dB threshold
    audio = np.concatenate([tone, hiss, tone, quiet])
    mask = activity.speech_mask(audio, rate, fps)
    assert len(mask) == 100
    hang = round(activity.SPEECH_HANGOVER_S * fps)  # 5 frames
    expected = np.zeros(100, bool)
    expected[0:25 + hang] = True
    expected[50:75 + hang] = True
    np.testing.assert_array_equal(mask, expected)
    assert not activity.speech_mask(np.zeros(rate), rate, fps).any()
    # a clip that is all quiet speech is still speech (relative threshold), above the absolute floor
    assert activity.speech_mask(quiet, rate, fps).all()
    envelope = activity.speech_envelope(audio, rate, fps)
    assert envelope[10] == pytest.approx(0.3 / math.sqrt(2), rel=1e-3)


def test_speech_mask_ignores_room_noise_hum_and_dc():
    """Speech in pauses of 0.6 s heard through noise 20 dB under it, mains hum and a DC offset: the mask is the
    clean recording's (a threshold relative to the loud level alone called every frame speech)."""
    rate, fps = 16000, 25.0
    t = np.arange(4 * rate) / rate
    bursts = (t % 1.0) < 0.4
    speech = 0.2 * np.sin(2 * np.pi * 180 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)) * bursts
    clean = activity.speech_mask(speech, rate, fps)
    assert 0.4 < clean.mean() < 0.8
    rms = np.sqrt(np.mean(speech[bursts] ** 2))
    noise = rms / 10.0 * np.random.default_rng(3).standard_normal(len(t))
    hum = 0.03 * np.sin(2 * np.pi * 50 * t)
    noisy = activity.speech_mask(speech + noise + hum + 0.05, rate, fps)
    assert np.mean(noisy == clean) > 0.95
