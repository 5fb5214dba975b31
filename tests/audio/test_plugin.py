"""audio_plugin in an App, headless: virtual playback on the stepped clock, taps, levels, voices, lip alignment."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from audio_helpers import tone

from engine.app import App
from engine.audio.devices import AudioDeviceError
from engine.audio.playback import AudioPlayback
from engine.audio.plugin import AudioLevel, AudioVoices, audio_plugin, output_delay_samples
from engine.audio.ring import FeatureRing, SampleRing
from engine.audio.settings import AudioSettings
from engine.audio.sources import decode_file
from engine.audio.tap import AudioTap
from engine.time import MasterClock, Time


def _app(settings: AudioSettings | None = None, fps: float = 25.0) -> App:
    app = App()
    app.insert_resource(MasterClock("stepped", fps))
    if settings is not None:
        app.insert_resource(settings)
    app.add_plugin(audio_plugin)
    app.resource(AudioTap).enabled = True
    app.startup()
    return app


def test_three_headless_seconds_play_exactly_48000_samples() -> None:
    app = _app()
    assert app.resource(AudioPlayback).mode == "virtual"  # 'auto' on a stepped clock never opens a device
    for _ in range(75):
        app.update()
        assert app.resource(AudioLevel).samples == 640
    assert len(app.resource(AudioTap)) == 48000


def test_sixty_second_file_ends_with_audio_and_video_equal(audio_file) -> None:
    rng = np.random.default_rng(0)
    speech = (0.3 * rng.standard_normal(60 * 16000)).clip(-1, 1).astype(np.float32)
    path = audio_file("minute.wav", speech[None, :], 16000)
    app = _app()
    handle = app.resource(AudioPlayback).play(path)
    frames = 0
    for _ in range(1500):
        app.update()
        frames += 1
    tap = app.resource(AudioTap)
    assert abs(tap.duration_s - frames / 25) <= 1 / 25
    # The tap holds the file itself, shifted by the output delay that lines sound up with the lips.
    delay = app.resource(AudioPlayback).mixer.delay.samples
    original = decode_file(path)
    played = tap.samples()
    assert np.array_equal(played[delay:], original[:len(played) - delay])
    assert np.all(played[:delay] == 0)
    assert not handle.done and handle.position_s == pytest.approx(60 - delay / 16000)
    for _ in range(int(np.ceil(delay / 640))):
        app.update()
    assert handle.done


def test_virtual_playback_follows_the_clock() -> None:
    app = _app()
    playback = app.resource(AudioPlayback)
    positions = []
    for _ in range(50):
        app.update()
        positions.append(playback.position_s)
        # Sound is played up to the end of the frame being shown.
        assert playback.position_s == pytest.approx(app.resource(Time).elapsed + 1 / 25)
    assert np.all(np.diff(positions) > 0)


def test_lips_and_sound_line_up() -> None:
    quiet, loud = np.zeros(16000, np.float32), tone(300.0, 1.0, 16000)
    app = _app()
    app.resource(AudioPlayback).play(np.concatenate([quiet, loud]))
    ring = app.resource(FeatureRing)
    settings = app.resource(AudioSettings)
    own = settings.window_frames - settings.lookahead_frames - 2  # index of the frame's own two features
    onset_frame = None
    for frame in range(60):
        app.update()
        now = app.resource(Time).elapsed
        found = ring.at(now)
        if frame >= 3:  # after the output delay, the window for what is heard now is always ready in time
            assert found is not None and found[1] == pytest.approx(now)
        if onset_frame is None and found is not None and found[2][own:own + 2].max() > 0:
            onset_frame = frame
    level_onset = np.argmax(np.abs(app.resource(AudioTap).samples()) > 0.1) / 16000
    # The features for the tone's first video frame are handed out at the frame its sound starts playing.
    assert onset_frame is not None
    assert abs(onset_frame / 25 - level_onset) <= 1 / 25


def test_output_delay_is_whole_video_frames_covering_the_feature_latency() -> None:
    assert output_delay_samples(AudioSettings(), 2, 0) == 1280  # 85 ms needed after a frame's start - 40 ms rendered
    assert output_delay_samples(AudioSettings(lookahead_frames=0), 2, 0) == 640
    assert output_delay_samples(AudioSettings(align_output=False), 2, 0) == 0
    # Blocks of 5 with 2 right frames, 4 frames of look-ahead: frame 0's window ends in block 0..9, which needs
    # samples up to (9 + 2) * 320 + 400 = 3920; less the 640 rendered ahead, rounded up to whole frames: 6 * 640.
    assert output_delay_samples(AudioSettings(lookahead_frames=4), 5, 2) == 3840


def test_without_alignment_sound_leaves_at_once() -> None:
    app = _app(AudioSettings(align_output=False))
    app.resource(AudioPlayback).play(np.full(1000, 0.5, np.float32))
    app.update()
    assert np.all(app.resource(AudioTap).samples()[:640] == 0.5)
    assert app.resource(AudioLevel).dbfs == pytest.approx(20 * np.log10(0.5), abs=0.01)


def test_handles_interrupt_and_stop() -> None:
    app = _app(AudioSettings(align_output=False))
    playback = app.resource(AudioPlayback)
    first = playback.play(np.full(1600, 0.1, np.float32))
    second = playback.play(np.full(1600, 0.2, np.float32))
    app.update()
    assert first.started and not first.done and playback.busy
    app.update()
    app.update()
    assert first.done and second.started
    third = playback.play(np.full(6400, 0.3, np.float32), interrupt=True)
    assert second.done and second.cancelled
    app.update()
    assert third.started and app.resource(AudioTap).samples()[-1] == pytest.approx(0.3)
    playback.stop()
    app.update()
    assert third.cancelled and not playback.busy
    assert app.resource(AudioLevel).rms == 0.0 and app.resource(AudioLevel).dbfs == -120.0


def test_each_voice_hears_only_its_own_clips() -> None:
    app = _app(AudioSettings(voices=("anna", "ben")))
    voices = app.resource(AudioVoices)
    playback = app.resource(AudioPlayback)
    playback.play(tone(200.0, 0.5, 16000), voice="ben")
    with pytest.raises(KeyError, match="'carl'.*anna"):
        playback.play(tone(200.0, 0.5, 16000), voice="carl")
    assert app.resource(SampleRing) is voices.samples["anna"]
    for _ in range(20):
        app.update()
    anna, ben = voices.features["anna"], voices.features["ben"]
    assert len(anna) == len(ben) > 0
    loudest = lambda ring: max(float(ring.get(k)[1].max()) for k in range(len(ring)))  # noqa: E731
    assert loudest(anna) == pytest.approx(np.log(1e-5)) and loudest(ben) > 0.0
    assert np.abs(app.resource(AudioTap).samples()).max() > 0.4


def test_missing_microphone_is_a_clear_error_for_the_mic_only() -> None:
    app = App()
    app.insert_resource(MasterClock("stepped", 25))
    app.insert_resource(AudioSettings(input="mic", input_device="no-such-microphone-xyz"))
    app.add_plugin(audio_plugin)
    with pytest.raises(AudioDeviceError, match="input device"):
        app.startup()
    _app(AudioSettings(input="none")).update()  # the same engine without the mic runs


def test_shutdown_releases_and_is_repeatable(tmp_path: Path) -> None:
    app = _app(AudioSettings(output="virtual"))
    app.update()
    app.shutdown()
    app.shutdown()
