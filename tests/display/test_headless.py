"""Headless runner: stepped clock, frame budget, exit requests, shutdown, the shared GL target."""
from __future__ import annotations

import numpy as np
import pytest

from engine.app import App
from engine.display.headless import frame_budget, run_headless
from engine.display.present import Presenter
from engine.display.settings import DisplaySettings
from engine.display.target import GLTarget
from engine.ecs import Stage
from engine.time import MasterClock, Time


def test_frame_budget():
    assert frame_budget(25, 3.0, None) == 75
    assert frame_budget(25, 3.0, 10) == 10
    assert frame_budget(30, None, None) is None
    with pytest.raises(ValueError, match="seconds"):
        frame_budget(25, -1.0, None)


def test_stepped_clock_and_shutdown():
    app = App()
    app.insert_resource(DisplaySettings(size=(32, 32), fps=50))
    times: list[float] = []
    app.add_system(lambda world: times.append(world.resource(Time).elapsed), Stage.UPDATE, name="test.times")
    shut = []
    app.on_shutdown(lambda: shut.append(True))
    result = run_headless(app, seconds=0.5)
    assert result.frames == 25 and result.seconds == pytest.approx(0.5)
    assert app.world.resource(MasterClock).describe == "stepped"
    np.testing.assert_allclose(np.diff(times), 1 / 50, atol=1e-12)
    assert times[0] == 0.0
    assert shut == [True]
    # GL objects belong to the run: released and removed with it.
    assert not app.world.has_resource(GLTarget) and not app.world.has_resource(Presenter)


def test_exit_request_stops_early():
    app = App()
    app.insert_resource(DisplaySettings(size=(16, 16)))

    def stop_at_frame_4(world):
        if world.resource(Time).frame == 4:
            app.request_exit("scene finished")

    app.add_system(stop_at_frame_4, Stage.UPDATE)
    result = run_headless(app)  # no budget: only the exit request ends it
    assert result.frames == 5 and result.exit_reason == "scene finished"


def test_refuses_an_app_whose_clock_already_ran():
    app = App()
    app.update()
    app.update()
    with pytest.raises(RuntimeError, match="fresh App"):
        run_headless(app, frames=1)


def test_error_in_a_system_still_shuts_down():
    app = App()
    app.insert_resource(DisplaySettings(size=(16, 16)))
    shut = []
    app.on_shutdown(lambda: shut.append(True))

    def broken(world):
        raise ZeroDivisionError("render exploded")

    app.add_system(broken, Stage.RENDER)
    with pytest.raises(ZeroDivisionError):
        run_headless(app, frames=3)
    assert shut == [True]


def test_read_pixels_is_cached_per_present(frame_app, card):
    runner = frame_app(DisplaySettings(size=(128, 64)), card)
    seen = []

    def read_twice(world):
        target = world.resource(GLTarget)
        first, second = target.read_pixels(), target.read_pixels()
        seen.append((first is second, first.flags.writeable, target.version))

    runner.app.add_system(read_twice, Stage.LAST, name="test.read_twice")
    run_headless(runner.app, frames=3)
    assert [s[0] for s in seen] == [True] * 3
    assert not any(s[1] for s in seen)
    assert [s[2] for s in seen] == [1, 2, 3]


def test_measure_present_reports_a_rate():
    from engine.display.measure import measure_present

    result = measure_present((32, 16), frames=3)
    assert result["size"] == "32x16" and result["frames"] == 3 and result["readback"]
    assert result["fps"] > 0 and result["ms_per_frame"] == pytest.approx(1e3 / result["fps"])


def test_realtime_follows_the_wall_clock_and_paces_the_frames():
    import time

    app = App()
    app.insert_resource(DisplaySettings(size=(16, 16), fps=20, realtime=True))
    times: list[float] = []
    app.add_system(lambda world: times.append(world.resource(Time).elapsed), Stage.UPDATE, name="test.times")
    start = time.perf_counter()
    result = run_headless(app, seconds=0.5)
    wall = time.perf_counter() - start
    assert app.world.resource(MasterClock).describe == "wall"
    assert wall >= 0.45  # paced, not as fast as possible (a stepped run of 10 frames takes milliseconds)
    assert times[0] == 0.0 and times[-1] + 1 / 20 >= 0.5 > times[-1]  # stopped on the clock, not on a frame count
    assert result.seconds == pytest.approx(times[-1] + 1 / 20) and result.frames == len(times)
    assert np.median(np.diff(times)) == pytest.approx(1 / 20, abs=0.01)


@pytest.mark.slow
def test_a_realtime_stall_keeps_sound_and_picture_together(tmp_path):
    """A frame that takes 2.5 s (longer than the audio rings hold) in a real-time recording: the clock runs on, the
    mp4 repeats the picture for the stall and loses no audio time, and a beep played after the stall is heard
    within a frame of the first picture that shows it (the picture turns white while the beep is heard)."""
    import time

    import av

    from engine.audio.playback import AudioPlayback
    from engine.audio.plugin import audio_plugin
    from engine.audio.settings import AudioSettings
    from engine.audio.tap import AudioTap
    from engine.components import FrameImage

    out = tmp_path / "stall.mp4"
    app = App()
    app.insert_resource(AudioSettings(output="virtual"))
    app.add_plugin(audio_plugin)
    app.insert_resource(DisplaySettings(size=(32, 32), fps=25, out=out))
    beep: dict = {}

    def act(world):
        now = world.resource(Time)
        if now.frame == 5:
            time.sleep(2.5)
        if "handle" not in beep and now.elapsed >= 3.0:
            tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(8000) / 16000)
            beep["handle"] = world.resource(AudioPlayback).play(tone.astype(np.float32))

    def render(world):
        handle = beep.get("handle")
        heard = handle is not None and handle.started and not handle.done
        world.resource(FrameImage).rgba = np.full((32, 32, 4), 255 if heard else 0, np.uint8)

    app.add_system(act, Stage.UPDATE, name="test.act")
    app.add_system(render, Stage.RENDER, name="test.render")
    result = run_headless(app, seconds=4.0, realtime=True)
    playback = app.world.resource(AudioPlayback)
    assert len(app.world.resource(AudioTap)) == playback.mixer.rendered  # silence stands in for the lost samples
    assert playback.mixer.output.counters()["dropped"] > 0  # the stall did overflow the output ring
    assert result.frames < 80  # fewer frames than slots: the stall was not made up
    with av.open(str(out)) as container:
        video = [(float(f.pts * f.time_base), f.to_ndarray(format="gray").mean()) for f in container.decode(video=0)]
    with av.open(str(out)) as container:
        chunks = [(float(f.pts * f.time_base), f.to_ndarray().mean(axis=0)) for f in container.decode(audio=0)]
        rate = container.streams.audio[0].rate
    assert len(video) == pytest.approx(100, abs=2)  # 4 s of slots at 25 fps, whatever the loop managed
    start, audio = chunks[0][0], np.concatenate([c for _, c in chunks])
    assert len(audio) / rate == pytest.approx(len(video) / 25, abs=0.065)  # AAC pads its last 64 ms frame
    picture_s = next(t for t, level in video if level > 128)
    sound_s = start + np.argmax(np.abs(audio) > 0.25) / rate
    assert picture_s >= 2.9
    # Stepped, the offset is in [0, 1/25): the picture shows the beep for the frame in which it starts. On a wall
    # clock a frame may start late (a busy machine), by up to a frame more either way. Had the overflow lost its
    # samples instead of becoming silence, the sound would lead by the 0.5 s the ring could not hold.
    assert -0.05 <= sound_s - picture_s <= 0.08
