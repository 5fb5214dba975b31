"""Choreography: a scripted scene stepped on the stepped clock gives an exact, repeatable timeline of events."""
from __future__ import annotations

from pathlib import Path

import pytest
from scene_helpers import constant, make_app

from engine.app import Diagnostics
from engine.audio.playback import AudioPlayback
from engine.components import Avatar, Framing
from engine.scene.api import Scene
from engine.scene.components import Captions, SceneEvent
from engine.scene.framing import ease_in_out
from engine.scene.protocol import ControlRequest
from engine.scene.timeline import MAX_INSTANT_STEPS, Scripts


def run_frames(app, frames: int) -> list[SceneEvent]:
    """Step `frames` frames, collecting the SceneEvents of each."""
    events: list[SceneEvent] = []
    for _ in range(frames):
        app.update()
        events += app.world.messages(SceneEvent).read("test")
    return events


def spawn_framed(app, name: str = "host") -> Framing:
    """An entity that takes framing like an avatar does (no renderer needed to test the choreography)."""
    framing = Framing()
    app.world.spawn(Avatar(Path("unused"), name), framing)
    return framing


def scripted_scene(app, log: list):
    scene = Scene(app)
    scene.background(color=(0.1, 0.1, 0.1))

    def main(d):
        handle = yield d.say(constant(0.5, 0.25), caption="hello")
        log.append(("said", d.now, handle.done))
        yield d.wait(0.2)
        yield d.frame("max", over=0.4)
        message = yield d.on_message("cue", name="go")
        log.append(("cue", d.now, message.fields["data"]))
        yield d.frame("med")
        yield 0.08
        log.append(("end", d.now))

    scene.script(main)


def test_a_scripted_scene_gives_the_expected_timeline(app):
    log: list = []
    framing = spawn_framed(app)
    scripted_scene(app, log)
    events = run_frames(app, 34)
    app.world.messages(ControlRequest).send(ControlRequest("cue", {"name": "other"}))
    events += run_frames(app, 2)
    app.world.messages(ControlRequest).send(ControlRequest("cue", {"name": "go", "data": 7}))
    events += run_frames(app, 6)
    timeline = [(e.frame, e.kind) for e in events]
    # The clip starts after frame 0's audio (sample 640) and is heard to its end 0.5 s + the lip-sync delay later.
    delay = app.resource(AudioPlayback).mixer.delay.samples
    said_frame = -(-(640 + 8000 + delay) // 640) - 1
    assert timeline == [
        (0, "start"), (0, "say"), (said_frame, "say:done"), (said_frame, "wait"), (said_frame + 5, "wait:done"),
        (said_frame + 5, "frame"), (said_frame + 15, "frame:done"), (said_frame + 15, "on_message"),
        (36, "on_message:done"), (36, "frame"), (36, "frame:done"), (36, "wait"), (38, "wait:done"), (38, "end"),
    ]
    assert log[0][2] is True and log[1] == ("cue", pytest.approx(36 / 25), 7)
    assert framing.zoom == 0.5 and framing.preset == "med"


def test_the_same_script_gives_the_same_timeline_twice():
    timelines = []
    for _ in range(2):
        app = make_app()
        spawn_framed(app)
        scripted_scene(app, [])
        timelines.append([(e.frame, e.kind, e.time_s) for e in run_frames(app, 30)])
        app.shutdown()
    assert timelines[0] == timelines[1] and len(timelines[0]) >= 6


def test_framing_eases_without_jumps_and_arrives(app):
    framing = spawn_framed(app)
    scene = Scene(app)
    scene.script(lambda d: (yield d.frame("max", over=1.0)))
    zooms = []
    for _ in range(30):
        app.update()
        zooms.append(framing.zoom)
    steps = [b - a for a, b in zip(zooms, zooms[1:])]
    assert all(s >= 0 for s in steps) and zooms[-1] == 1.0
    assert max(steps) <= 3 / 25 + 1e-3  # cubic easing peaks at 3x the mean speed (1/25 a frame): no jumps
    assert steps[0] < steps[12]  # eased: slow start, faster in the middle
    assert ease_in_out(0.0) == 0.0 and ease_in_out(1.0) == 1.0 and ease_in_out(0.5) == pytest.approx(0.5)


def test_caption_shows_while_its_speech_is_heard(app):
    scene = Scene(app)
    scene.script(lambda d: (yield d.say(constant(0.2, 0.1), caption="spoken")))
    app.startup()  # the audio plugin builds its playback there
    delay_frames = app.resource(AudioPlayback).mixer.delay.samples // 640
    shown = []
    for _ in range(16):
        app.update()
        caption = app.resource(Captions).slots["main"]
        shown.append(caption.speech.started and not caption.speech.done)
    first = shown.index(True)
    # Queued in frame 0 after that frame's audio: the speakers play it from frame 1 + the lip-sync delay on. Playback
    # counts a clip done once the frame holding its last samples is rendered, so 0.2 s shows for 4 of its 5 frames.
    assert first == 1 + delay_frames and sum(shown) == 4 and not any(shown[first + 4:])


def test_an_error_in_a_script_is_reported_and_the_scene_keeps_running(app):
    scene = Scene(app)
    ticks = []

    def broken(d):
        yield d.wait(0.1)
        raise ZeroDivisionError("bad arithmetic in the scene")

    def steady(d):
        while True:
            ticks.append(d.now)
            yield None

    scene.script(broken)
    scene.script(steady)
    run_frames(app, 10)
    errors = app.resource(Diagnostics).errors
    assert "ZeroDivisionError: bad arithmetic in the scene" in errors["scene script broken"].message
    assert len(ticks) == 10 and [r.name for r in app.resource(Scripts).running] == ["steady"]


def test_a_step_that_fails_to_start_is_raised_inside_the_script(app):
    scene = Scene(app)
    caught = []

    def main(d):
        try:
            yield d.say(constant(0.1, 0.1), voice="nobody")
        except KeyError as error:
            caught.append(str(error))
        yield d.wait(0.04)

    scene.script(main)
    events = run_frames(app, 3)
    assert "no voice 'nobody'" in caught[0]
    assert [e.kind for e in events] == ["start", "say:failed", "wait", "wait:done", "end"]


def test_a_script_yielding_nonsense_is_stopped_with_a_reason(app):
    Scene(app).script(lambda d: (yield "soon"), name="bad")
    run_frames(app, 2)
    assert "yielded 'soon'" in app.resource(Diagnostics).errors["scene script bad"].message


def test_a_script_that_never_waits_is_stopped_instead_of_freezing_the_frame(app):
    def looping(d):
        while True:
            yield d.caption("again")

    Scene(app).script(looping)
    run_frames(app, 2)
    assert f"took {MAX_INSTANT_STEPS} steps in one frame" in app.resource(Diagnostics).errors[
        "scene script looping"].message
    assert app.frame == 2


def test_start_runs_scripts_side_by_side(app):
    scene = Scene(app)
    seen = []

    def helper(d):
        seen.append(("helper", d.now))
        yield d.wait(0.04)
        seen.append(("helper done", d.now))

    def main(d):
        yield d.start(helper)
        seen.append(("main", d.now))
        yield d.wait(0.12)
        seen.append(("main done", d.now))

    scene.script(main)
    run_frames(app, 5)
    assert seen == [("main", 0.0), ("helper", 0.0), ("helper done", pytest.approx(0.04)),
                    ("main done", pytest.approx(0.12))]


def test_a_script_that_refuses_to_stop_is_dropped_without_breaking_the_engine(app, caplog):
    from engine.scene.timeline import close_script

    def stubborn(d):
        try:
            yield d.wait(10.0)
        finally:
            yield None  # yielding on close is a RuntimeError inside generator.close()

    Scene(app).script(stubborn)
    run_frames(app, 2)
    (run,) = app.resource(Scripts).running
    close_script(run)
    assert "did not stop cleanly" in caplog.text
