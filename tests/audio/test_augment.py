"""Training-time speech augmentation: noise colours, the requested speech-to-noise ratio, gain, no clipping."""
import numpy as np
import pytest

from engine.audio.augment import SpeechAugment, augment_speech, coloured_noise, speech_level


def _speech_like(seconds: float = 3.0, rate: int = 16000) -> np.ndarray:
    """Bursts of a 200 Hz tone with pauses between them (half the time loud, half silent)."""
    t = np.arange(int(seconds * rate)) / rate
    on = (np.floor(t * 2) % 2 == 0).astype(np.float32)
    return (0.3 * np.sin(2 * np.pi * 200 * t) * on).astype(np.float32)


def _band_power(noise: np.ndarray, low: float, high: float, rate: int = 16000) -> float:
    spectrum = np.abs(np.fft.rfft(noise)) ** 2
    f = np.fft.rfftfreq(len(noise), 1.0 / rate)
    return float(spectrum[(f >= low) & (f < high)].mean())


@pytest.mark.parametrize("colour, slope", [("white", 0.0), ("pink", -1.0), ("brown", -2.0)])
def test_noise_colours_have_unit_rms_and_their_spectral_slope(colour, slope):
    noise = coloured_noise(1 << 16, colour, np.random.default_rng(0))
    assert np.sqrt(np.mean(noise ** 2)) == pytest.approx(1.0, rel=1e-4)
    # Power per octave band: 1/f^k falls by 2^k per doubling of frequency.
    measured = np.log2(_band_power(noise, 1600, 3200) / _band_power(noise, 400, 800)) / 2.0
    assert measured == pytest.approx(slope, abs=0.25)


def test_speech_level_reads_the_loud_frames_not_the_pauses():
    audio = _speech_like()
    assert speech_level(audio) == pytest.approx(0.3 / np.sqrt(2), rel=0.02)
    assert speech_level(np.zeros(0, np.float32)) == 0.0


def test_noise_is_added_at_the_requested_snr_and_gain():
    audio = _speech_like()
    spec = SpeechAugment(gain_db=(-6.0, -6.0), snr_db=(20.0, 20.0), noisy_fraction=1.0)
    out = augment_speech(audio, np.random.default_rng(1), spec)
    gain = 10 ** (-6 / 20)
    noise = out - gain * audio
    snr = 20 * np.log10(speech_level(gain * audio) / np.sqrt(np.mean(noise ** 2)))
    assert snr == pytest.approx(20.0, abs=0.1)


def test_quiet_copies_have_no_noise_and_loud_ones_never_clip():
    audio = _speech_like()
    clean = augment_speech(audio, np.random.default_rng(2), SpeechAugment(gain_db=(3.0, 3.0), noisy_fraction=0.0))
    np.testing.assert_allclose(clean, audio * 10 ** (3 / 20), rtol=1e-5)
    loud = augment_speech(4.0 * audio, np.random.default_rng(3), SpeechAugment(gain_db=(6.0, 6.0)))
    assert np.abs(loud).max() <= 0.99 + 1e-6


def test_the_same_seed_gives_the_same_copy():
    audio = _speech_like()
    a = augment_speech(audio, np.random.default_rng(7))
    b = augment_speech(audio, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, augment_speech(audio, np.random.default_rng(8)))
