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
