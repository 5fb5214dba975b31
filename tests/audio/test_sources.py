"""Sources: files of any rate and channel count to 16 kHz mono, streaming resampling, push queue, silence."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.audio.sources import (
    AudioClip, AudioFormatError, FileSource, PushSource, SilenceSource, StreamResampler, decode_file, load_clip,
)
from audio_helpers import peak_hz, tone


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
@pytest.mark.parametrize("suffix", ["wav", "flac", "mp3"])
def test_files_of_any_rate_decode_to_16k_mono(audio_file, rate: int, suffix: str) -> None:
    path = audio_file(f"tone{rate}.{suffix}", tone(440.0, 1.0, rate)[None, :], rate)
    samples = decode_file(path)
    assert samples.dtype == np.float32
    assert abs(len(samples) - 16000) <= 16  # one second, whatever the source rate
    assert peak_hz(samples) == pytest.approx(440.0, abs=2.0)
    middle = samples[2000:-2000]
    # mp3 is lossy and low-passes a little; the lossless formats keep the level.
    assert np.sqrt(np.mean(middle ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.06 if suffix == "mp3" else 0.01)


def test_stereo_is_averaged_to_mono(audio_file) -> None:
    left = tone(300.0, 1.0, 44100, amplitude=0.6)
    right = tone(1200.0, 1.0, 44100, amplitude=0.2)
    samples = decode_file(audio_file("stereo.wav", np.stack([left, right]), 44100))
    spectrum = np.abs(np.fft.rfft(samples[:16000]))
    # Both channels survive, each at half its level.
    assert spectrum[300] / spectrum[1200] == pytest.approx(3.0, rel=0.05)
    expected = np.sqrt((0.3 ** 2 + 0.1 ** 2) / 2)
    assert np.sqrt(np.mean(samples[1000:-1000] ** 2)) == pytest.approx(expected, rel=0.02)


def test_identical_channels_keep_their_level(audio_file) -> None:
    x = tone(500.0, 0.5, 48000)
    samples = decode_file(audio_file("dual.flac", np.stack([x, x]), 48000))
    assert np.abs(samples).max() == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("channels", [6, 8, 16])
def test_many_channels_are_averaged_to_mono(tmp_path: Path, channels: int) -> None:
    """PyAV turned planar audio of 8 channels or more into arrays by reading past its planes: the process died
    (SIGSEGV) on a `say` with such a wav, found by fuzzing beside the soak."""
    import wave

    levels = np.linspace(0.1, 0.8, channels)
    frames = (levels[None, :] * 32767 * np.ones((16000, 1))).round().astype("<i2")
    path = tmp_path / f"{channels}ch.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(frames.tobytes())
    samples = decode_file(path, max_seconds=10.0)
    assert len(samples) == 16000
    assert np.median(samples) == pytest.approx(levels.mean(), abs=1e-3)


def test_stream_resampler_is_block_size_invariant() -> None:
    x = tone(700.0, 1.0, 44100) + 0.1 * np.random.default_rng(1).standard_normal(44100).astype(np.float32)
    whole = StreamResampler(44100, 16000)
    reference = np.concatenate([whole.process(x), whole.flush()])
    pieces = StreamResampler(44100, 16000)
    cuts = np.cumsum(np.random.default_rng(2).integers(1, 3000, 60))
    parts = [pieces.process(p) for p in np.split(x, cuts[cuts < len(x)])] + [pieces.flush()]
    streamed = np.concatenate(parts)
    assert len(streamed) == len(reference) == 16000
    assert np.abs(streamed - reference).max() < 1e-5


def test_same_rate_passes_through_untouched() -> None:
    x = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    resampler = StreamResampler(16000, 16000)
    assert np.array_equal(resampler.process(x), x) and len(resampler.flush()) == 0


def test_missing_and_unreadable_files_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.wav does not exist"):
        decode_file(tmp_path / "nope.wav")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"this is not audio at all" * 10)
    with pytest.raises(AudioFormatError, match="junk.wav"):
        decode_file(junk)


def test_file_source_reads_then_gives_silence(audio_file) -> None:
    source = FileSource(audio_file("short.wav", tone(440.0, 0.1, 16000)[None, :], 16000))
    first = source.read(1000)
    assert not source.finished and np.abs(first).max() > 0.4
    rest = source.read(1000)
    assert source.finished
    assert np.all(rest[600:] == 0) and np.abs(rest[:500]).max() > 0.4


def test_silence_source_is_zeros() -> None:
    assert np.array_equal(SilenceSource().read(123), np.zeros(123, np.float32))


def test_push_source_plays_clips_back_to_back_and_interrupts() -> None:
    source = PushSource()
    a = source.push(np.full(300, 0.25, np.float32))
    b = source.push(AudioClip(np.full(200, 0.5, np.float32)))
    out = source.read(400)
    assert np.all(out[:300] == 0.25) and np.all(out[300:] == 0.5)
    assert (a.start, a.end, b.start, b.end) == (0, 300, 300, None)
    c = source.push(np.full(100, -0.5, np.float32), interrupt=True)
    assert b.cancelled and not c.cancelled
    out = source.read(200)
    assert np.all(out[:100] == -0.5) and np.all(out[100:] == 0)
    assert (c.start, c.end) == (400, 500) and not source.busy
    source.push(np.ones(50, np.float32))
    source.clear()
    assert not source.busy and np.all(source.read(10) == 0)


def test_load_clip_resamples_a_clip_at_another_rate() -> None:
    clip = load_clip(AudioClip(tone(440.0, 1.0, 8000), sample_rate=8000, name="low"))
    assert clip.sample_rate == 16000 and abs(len(clip.samples) - 16000) <= 8 and clip.name == "low"
    with pytest.raises(ValueError, match="mono"):
        load_clip(np.zeros((2, 10), np.float32))
    pcm = load_clip(np.array([0, 16384, -32767], np.int16)).samples
    assert pcm.dtype == np.float32 and np.allclose(pcm, [0.0, 0.5, -1.0], atol=1e-4)


def test_the_dc_blocker_removes_an_offset_keeps_speech_and_streams():
    from engine.audio.sources import DCBlocker

    rate = 16000
    t = np.arange(2 * rate) / rate
    tone = 0.3 * np.sin(2 * np.pi * 120 * t)
    whole = DCBlocker(rate).process(tone + 0.02)
    assert abs(whole[rate:].mean()) < 1e-4  # settled within a second
    assert np.sqrt(np.mean(whole[rate:] ** 2)) == pytest.approx(0.3 / np.sqrt(2), rel=0.005)  # -0.04 dB at 120 Hz
    blocker = DCBlocker(rate)
    pieces = np.concatenate([blocker.process(part) for part in np.array_split(tone + 0.02, 37)])
    np.testing.assert_allclose(pieces, whole, atol=1e-7)
