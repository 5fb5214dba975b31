"""Stages run in their fixed order; before/after order systems inside a stage; cycles are refused."""
import pytest

from engine.app import App
from engine.ecs import Stage, SystemCycleError
from engine.time import MasterClock


def recorder(log, label):
    def system(world):
        log.append(label)

    system.__qualname__ = f"record_{label}"
    return system


def test_stages_run_in_declared_order_whatever_the_insertion_order():
    app = App()
    app.insert_resource(MasterClock("stepped", 25))
    log = []
    for stage in reversed(list(Stage)):
        app.add_system(recorder(log, stage.value), stage)
    app.update()
    assert log == [s.value for s in Stage]
    app.update()
    assert log[len(Stage):] == [s.value for s in Stage if s is not Stage.STARTUP]


def test_before_and_after_override_insertion_order():
    app = App()
    log = []
    c, b, a = recorder(log, "c"), recorder(log, "b"), recorder(log, "a")
    app.add_system(c, after=[b])
    app.add_system(b, after=[a])
    app.add_system(a, before=[c])
    app.update()
    assert log == ["a", "b", "c"]


def test_unconstrained_systems_keep_insertion_order():
    app = App()
    log = []
    for label in "xyzw":
        app.add_system(recorder(log, label))
    app.update()
    assert log == list("xyzw")


def test_cycle_is_reported_with_the_systems_involved():
    app = App()
    log = []
    a, b = recorder(log, "a"), recorder(log, "b")
    app.add_system(a, after=[b])
    app.add_system(b, after=[a])
    with pytest.raises(SystemCycleError, match="record_a.*record_b|record_b.*record_a"):
        app.update()


def test_adding_a_system_twice_needs_a_new_name():
    app = App()
    a = recorder([], "a")
    app.add_system(a)
    with pytest.raises(ValueError, match="already scheduled"):
        app.add_system(a)
    app.add_system(a, name="a-again")


def test_run_if_skips_a_system():
    app = App()
    log = []
    app.add_system(recorder(log, "gated"), run_if=lambda world: len(log) == 0)
    app.update()
    app.update()
    assert log == ["gated"]


def test_strict_app_raises_and_lenient_app_keeps_running_and_reports():
    def broken(world):
        raise RuntimeError("boom")

    strict = App()
    strict.add_system(broken)
    with pytest.raises(RuntimeError, match="boom"):
        strict.update()

    from engine.app import Diagnostics

    lenient = App(strict=False)
    log = []
    lenient.add_system(broken)
    lenient.add_system(recorder(log, "after"))
    lenient.update()
    lenient.update()
    errors = lenient.resource(Diagnostics).errors
    assert log == ["after", "after"]
    (name,) = errors
    assert name.endswith("broken") and errors[name].count == 2 and "boom" in errors[name].message


def test_startup_failures_raise_even_when_lenient():
    def broken_startup(world):
        raise OSError("no GL")

    app = App(strict=False)
    app.add_system(broken_startup, Stage.STARTUP)
    with pytest.raises(OSError, match="no GL"):
        app.update()


def test_timings_are_recorded_per_system_and_frame():
    from engine.app import SystemTimings

    app = App()
    app.add_system(recorder([], "timed"))
    app.add_system(recorder([], "once"), Stage.STARTUP)
    app.update()
    timings = app.resource(SystemTimings)
    assert any(name.endswith("record_timed") for name in timings.last_ms)
    assert [n for n in timings.startup_ms if n.endswith("record_once")] and not any(
        n.endswith("record_once") for n in timings.mean_ms)
    assert len(timings.frame_ms) == 1 and timings.frame_ms[0] >= 0
    assert set(timings.stage_ms) == {s.value for s in Stage if s is not Stage.STARTUP}


def test_plugins_run_once():
    calls = []

    def my_plugin(app):
        calls.append(app)

    app = App()
    app.add_plugin(my_plugin).add_plugin(my_plugin)
    assert calls == [app] and app.has_plugin(my_plugin)


def test_exit_request_is_seen_after_the_frame_and_shutdown_hooks_run_in_reverse():
    app = App()
    order = []
    app.on_shutdown(lambda: order.append("first registered"))
    app.on_shutdown(lambda: order.append("second registered"))
    app.add_system(lambda world: app.request_exit("done"), name="quit")
    assert not app.should_exit
    app.update()
    assert app.exit_reason == "done"
    app.shutdown()
    assert order == ["second registered", "first registered"]


def test_a_link_to_no_system_is_refused_at_startup_and_an_optional_one_is_not():
    from engine.ecs import UnknownSystemError, optional

    app = App()
    log = []
    a, b = recorder(log, "a"), recorder(log, "b")
    app.add_system(a, after=["engine.audio.plugin.open_audo"])  # a typo: its order would silently vanish
    with pytest.raises(UnknownSystemError, match="open_audo.*is not scheduled.*optional"):
        app.startup()
    app = App()
    app.add_system(b, after=[optional("engine.audio.plugin.open_audio"), optional(a)])  # neither plugin added
    app.add_system(a)
    app.update()
    assert log == ["a", "b"]  # an optional link that is there orders as any other


def test_a_link_across_stages_is_refused():
    from engine.ecs import UnknownSystemError

    app = App()
    a, b = recorder([], "a"), recorder([], "b")
    app.add_system(a, Stage.FIRST)
    app.add_system(b, Stage.LAST, after=[a])
    with pytest.raises(UnknownSystemError, match="is in stage first"):
        app.startup()
