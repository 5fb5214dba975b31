"""Fixed-step accumulator and master clock maths."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.app import App
from engine.ecs import Stage
from engine.time import FixedTime, MasterClock, Time


def test_first_step_is_due_at_time_zero():
    fixed = FixedTime(step=0.04)
    assert fixed.accumulate(0.0) == 1
    assert fixed.accumulate(0.039) == 0
    assert fixed.accumulate(0.001) == 1


@given(st.lists(st.floats(min_value=0.0, max_value=0.2), min_size=1, max_size=200))
def test_steps_track_elapsed_time_within_one_step(deltas):
    fixed = FixedTime(step=0.04, max_steps_per_frame=10_000)
    for delta in deltas:
        fixed.accumulate(delta)
    elapsed = sum(deltas)
    # Step k (0-based) is due once elapsed >= k * step.
    assert fixed.steps_total == int((elapsed + 1e-9) / 0.04) + 1
    assert 0.0 <= fixed.overstep < 1.0


def test_motion_runs_at_25_hz_whatever_the_display_rate():
    for fps, frames in [(25, 50), (60, 120), (144, 288), (10, 20)]:
        app = App()
        app.insert_resource(MasterClock("stepped", fps))
        steps = []
        app.add_system(lambda world: steps.append(world.resource(Time).elapsed), Stage.FIXED_UPDATE)
        for _ in range(frames):
            app.update()
        seconds = (frames - 1) / fps
        assert len(steps) == pytest.approx(seconds * 25 + 1, abs=1), fps


def test_a_long_stall_is_capped_not_replayed():
    fixed = FixedTime(step=0.04, max_steps_per_frame=5)
    fixed.accumulate(0.0)
    assert fixed.accumulate(10.0) == 5
    assert fixed.dropped > 9.0
    assert fixed.accumulate(0.0) == 0


def test_stepped_clock_is_exact_and_starts_at_zero():
    clock = MasterClock("stepped", fps=25)
    times = [clock.tick() for _ in range(76)]
    assert times[0] == 0.0 and times[-1] == pytest.approx(3.0, abs=1e-9)


def test_slaved_clock_follows_the_source_and_never_runs_backwards():
    position = [0.0]
    clock = MasterClock("stepped", fps=25)
    clock.tick()
    clock.tick()  # 0.04
    clock.slave_to(lambda: position[0], "test device")
    assert clock.describe == "slaved to test device"
    readings = []
    for pos in [0.0, 0.1, 0.05, 0.3]:  # the device reports a jitter backwards at 0.05
        position[0] = pos
        readings.append(clock.tick())
    assert readings == pytest.approx([0.04, 0.14, 0.14, 0.34])


def test_a_failing_clock_source_falls_back_to_wall_time():
    clock = MasterClock()
    clock.tick()
    unplugged = [False]

    def position():
        if unplugged[0]:
            raise OSError("device unplugged")
        return 0.0

    clock.slave_to(position)
    unplugged[0] = True
    t = clock.tick()
    assert clock.describe == "wall" and t >= 0.0


def test_time_resource_delta_and_frame():
    app = App()
    app.insert_resource(MasterClock("stepped", 50))
    seen = []
    app.add_system(lambda world: seen.append((world.resource(Time).frame, world.resource(Time).delta)))
    for _ in range(3):
        app.update()
    assert seen == [(0, 0.0), (1, pytest.approx(0.02)), (2, pytest.approx(0.02))]


def test_unknown_clock_source_is_refused():
    with pytest.raises(ValueError, match="slave_to"):
        MasterClock("audio")
