"""Sinks: mp4 recording with the engine's audio (or silence), PNG screenshots, the virtual camera."""
from __future__ import annotations

import importlib.util
import os
import signal
import time

import av
import numpy as np
import pytest
from PIL import Image

from engine.audio.tap import AudioTap
from engine.display.headless import run_headless
from engine.display.settings import DisplaySettings
from engine.display.sinks import (
    Mp4Sink,
    VirtualCamera,
    frames_due,
    opaque_rgb,
    open_virtual_camera,
    request_screenshot,
)
from engine.ecs import Stage
from engine.io.video import probe
from engine.time import Time


def audio_rms(path) -> float:
    with av.open(str(path)) as container:
        chunks = [frame.to_ndarray().astype(np.float64).ravel() for frame in container.decode(audio=0)]
    samples = np.concatenate(chunks)
    return float(np.sqrt(np.mean(samples**2)))


def test_mp4_three_seconds_has_75_frames_and_silent_audio(frame_app, card, tmp_path, capsys):
    out = tmp_path / "take.mp4"
    runner = frame_app(DisplaySettings(size=(128, 64), out=out), card)
    result = run_headless(runner.app, seconds=3.0)
    assert result.outputs == [out]
    assert str(out) in capsys.readouterr().out  # the runner says where the file went
    info = probe(out)
    assert info.frames == 75 and info.fps == pytest.approx(25.0)
    assert (info.width, info.height) == (128, 64)
    assert info.audio_duration_s == pytest.approx(3.0, abs=1 / 25)
    assert audio_rms(out) < 1e-3
    assert not any(tmp_path.glob(".*partial*"))


def test_mp4_muxes_the_audio_tap(frame_app, card, tmp_path):
    out = tmp_path / "voice.mp4"
    runner = frame_app(DisplaySettings(size=(64, 32), out=out), card)
    tap = AudioTap(sample_rate=16000)
    runner.app.insert_resource(tap)

    def play_tone(world):  # stands in for playback: 1/25 s of a 440 Hz tone per frame
        start = world.resource(Time).frame * 640
        t = (start + np.arange(640)) / 16000
        world.resource(AudioTap).write(0.5 * np.sin(2 * np.pi * 440 * t).astype(np.float32))

    runner.app.add_system(play_tone, Stage.FIRST, name="test.tone")
    spools = []
    runner.app.add_system(lambda world: spools.append(world.resource(AudioTap).spool), Stage.LAST, name="test.spool")
    run_headless(runner.app, frames=25)
    assert spools[0] is not None and spools[0].path.parent == tmp_path, "the sink streams the tap next to the mp4"
    assert tap.spool is None and not tap.enabled and not tap.samples().size  # nothing was held in memory
    assert not any(tmp_path.glob(".*partial*"))
    info = probe(out)
    assert info.frames == 25
    assert info.audio_duration_s == pytest.approx(1.0, abs=1 / 25)
    assert audio_rms(out) == pytest.approx(0.5 / np.sqrt(2), rel=0.1)


def read_wav(path):
    import wave

    with wave.open(str(path)) as wav:
        return wav.getframerate(), np.frombuffer(wav.readframes(wav.getnframes()), "<i2") / 32767.0


def test_audio_track_is_trimmed_or_padded_to_the_video(tmp_path):
    sink = Mp4Sink(tmp_path / "x.mp4", 25.0, quality=5)
    sink.writer.frames = 50  # two seconds of video
    tap = AudioTap(16000)
    sink.listen(tap)
    tap.write(np.ones(16000, np.float32))
    path, rate = sink.finish_audio(tap)
    rate_read, track = read_wav(path)
    assert path == sink.audio_path and rate == rate_read == 16000 and len(track) == 32000
    assert track[:16000].min() == 1.0 and track[16000:].max() == 0.0
    sink.listen(tap)
    tap.write(np.ones(40000, np.float32))
    assert len(read_wav(sink.finish_audio(tap)[0])[1]) == 32000
    silent = read_wav(sink.finish_audio(None)[0])[1]
    assert len(silent) == 32000 and not silent.any()


def test_recorded_audio_streams_to_disk_not_memory(tmp_path):
    """The tap's recording grows a file next to the output, not a list in memory (a kiosk records for hours)."""
    import tracemalloc

    sink = Mp4Sink(tmp_path / "long.mp4", 25.0, quality=5)
    tap = AudioTap(16000)
    sink.listen(tap)
    block = np.full(640, 0.25, np.float32)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(25 * 60):  # a minute of frames
            tap.write(block)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024  # a minute in memory would be 3.8 MB
    assert sink.audio_path.stat().st_size >= 2 * 16000 * 60 - 8192  # on disk (less what is still buffered)
    sink.writer.frames = 25 * 60
    path, _ = sink.finish_audio(tap)
    _, track = read_wav(path)
    assert len(track) == 16000 * 60 and np.allclose(track, 0.25, atol=1e-4)
    sink.abort(tap)
    assert not path.exists()


def test_a_failed_recording_leaves_no_partial_files(frame_app, card, tmp_path):
    out = tmp_path / "broken.mp4"
    out.write_bytes(b"the previous take")
    runner = frame_app(DisplaySettings(size=(32, 16), out=out), card)
    runner.app.insert_resource(AudioTap(16000))

    def fail_at_frame_3(world):
        if world.resource(Time).frame == 3:
            world.resource(Mp4Sink)._error = OSError("disk full")

    runner.app.add_system(fail_at_frame_3, Stage.LAST, name="test.fail")
    with pytest.raises(RuntimeError, match="disk full"):
        run_headless(runner.app, frames=6)
    assert out.read_bytes() == b"the previous take"  # atomic: the old file is untouched
    assert not any(tmp_path.glob(".*partial*"))


def test_a_hung_encoder_fails_the_recording_instead_of_the_loop_waiting_forever(tmp_path):
    """ffmpeg stopped (SIGSTOP) takes no frames: after stall_seconds without one it is killed, and the error says so."""
    sink = Mp4Sink(tmp_path / "hung.mp4", 25.0, quality=5, stall_seconds=0.5)
    picture = np.zeros((480, 640, 3), np.uint8)  # more than a pipe's buffer
    sink.submit(picture)
    for _ in range(200):
        if sink.writer._encoder is not None and sink.frames:
            break
        time.sleep(0.01)
    process = sink.writer._encoder._process
    os.kill(process.pid, signal.SIGSTOP)
    sink.submit(picture)
    sink.submit(picture)
    with pytest.raises(RuntimeError, match=r"hung\.mp4 failed: the h264 encoder \(ffmpeg\) took no frame for 0\.5 s"):
        sink.drain()
    assert process.poll() is not None
    sink.abort(None)
    assert not any(tmp_path.iterdir())


def test_mp4_out_must_be_mp4(tmp_path):
    with pytest.raises(ValueError, match=r"--out .*take.avi: recordings are mp4"):
        DisplaySettings(size=(16, 16), out=tmp_path / "take.avi")


def test_opaque_rgb_composites_transparent_canvases():
    pixels = np.array([[[200, 100, 0, 255], [200, 100, 0, 0], [255, 255, 255, 128]]], np.uint8)
    settings = DisplaySettings(background="transparent", background_color=(0.0, 0.0, 1.0))
    rgb = opaque_rgb(pixels, settings)
    assert rgb.shape == (1, 3, 3)
    assert tuple(rgb[0, 0]) == (200, 100, 0)
    assert tuple(rgb[0, 1]) == (0, 0, 255)
    assert tuple(rgb[0, 2]) == (128, 128, 255)
    assert opaque_rgb(pixels, DisplaySettings()).base is pixels  # opaque canvases are not copied


@pytest.mark.parametrize("background", ["color", "transparent"])
def test_screenshot_png_equals_canvas(frame_app, card, tmp_path, background):
    runner = frame_app(DisplaySettings(size=(128, 64), background=background), card)
    target = tmp_path / "shots" / "frame.png"

    def shoot_at_frame_1(world):
        if world.resource(Time).frame == 1:
            request_screenshot(world, target)

    runner.app.add_system(shoot_at_frame_1, Stage.UPDATE, name="test.shoot")
    result = run_headless(runner.app, frames=3)
    assert target in result.outputs
    saved = np.asarray(Image.open(target))
    channels = 4 if background == "transparent" else 3
    assert saved.shape == (64, 128, channels)
    np.testing.assert_array_equal(saved, runner.canvases[1][:, :, :channels])


def test_screenshot_default_name_goes_to_screenshot_dir(frame_app, card, tmp_path):
    runner = frame_app(DisplaySettings(size=(32, 16), screenshot_dir=tmp_path / "caps"), card)
    runner.app.add_system(lambda world: request_screenshot(world), Stage.UPDATE, name="test.shoot_all")
    run_headless(runner.app, frames=2)
    assert len(list((tmp_path / "caps").glob("screenshot-*.png"))) == 2


def test_virtual_camera_reports_unavailable_with_the_fix():
    vcam = open_virtual_camera(DisplaySettings(size=(64, 64), virtual_camera=True))
    if importlib.util.find_spec("pyvirtualcam") is None:
        assert not vcam.available and vcam.camera is None
        assert "pip install pyvirtualcam" in vcam.reason and "syncanim[vcam]" in vcam.reason
    elif vcam.available:
        vcam.camera.close()
    else:
        assert "virtual camera unavailable" in vcam.reason


def test_virtual_camera_setting_in_a_run_never_fakes_frames(frame_app, card):
    runner = frame_app(DisplaySettings(size=(64, 32), virtual_camera=True), card)
    run_headless(runner.app, frames=2)
    vcam = runner.app.world.resource(VirtualCamera)
    if not vcam.available:
        assert vcam.frames_sent == 0 and vcam.reason
    else:
        assert vcam.frames_sent == 2


def test_frames_due():
    assert [frames_due(k / 25, 25.0, k) for k in range(100)] == [1] * 100  # stepped at the video rate
    assert frames_due(0.49, 25.0, 5) == 8  # the loop fell behind: fill slots 5..12 to keep time
    assert frames_due(0.09, 25.0, 3) == 0  # the loop runs ahead (slot 2 is written): skip
    assert frames_due(0.1 - 0.015, 25.0, 2) == 1  # a wall clock's frame goes to the nearest slot
    assert frames_due(0.1 + 0.015, 25.0, 2) == 2


def test_recording_follows_the_clock_when_the_loop_is_slower(card, tmp_path):
    """A 10 fps loop recorded at 25 fps: the mp4 still covers the clock time, so it stays with the audio."""
    from engine.app import App
    from engine.components import FrameImage
    from engine.display import display_plugin
    from engine.display.headless import create_egl_context, release_egl_context
    from engine.display.target import create_target
    from engine.time import MasterClock

    out = tmp_path / "slow.mp4"
    app = App()
    app.insert_resource(DisplaySettings(size=(64, 32), fps=25.0, out=out))
    app.insert_resource(MasterClock("stepped", 10.0))
    app.add_plugin(display_plugin)
    app.insert_resource(FrameImage(card))
    ctx = create_egl_context()
    target = create_target(ctx, (64, 32), runner="test")
    app.insert_resource(target)
    for _ in range(10):
        app.update()
    app.shutdown()
    target.release()
    release_egl_context(ctx)
    info = probe(out)
    # frames at t = 0, 0.1, ..., 0.9 s fill slots 0 .. 22 at 25 fps (0.9 s is slot 22.5: a tie goes to the earlier)
    assert info.frames == 23
    assert info.audio_duration_s == pytest.approx(23 / 25, abs=1 / 25)
