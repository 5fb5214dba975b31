"""drive_motion in an App: three avatars on a stepped clock, each reading its own voice, run in one batched forward
per fixed step and match the same model stepped alone."""
import numpy as np
import pytest

from engine.app import App
from engine.audio.plugin import AudioVoices, Voice
from engine.audio.ring import FeatureRing
from engine.motion.components import MotionController, MotionModels, MotionState
from engine.motion.predict import clip_windows, run_frames
from engine.motion.runtime import MotionRuntime, motion_path
from engine.motion.systems import motion_plugin
from engine.time import MasterClock

FRAMES = 40


def test_three_avatars_batched_in_one_app_match_single_runs(trained_avatar, synth_data):
    audio = synth_data[1]["audio"]
    runtime = MotionRuntime.load(trained_avatar)
    clips = {name: audio[16000 * s: 16000 * (s + 3)] for name, s in (("a", 0), ("b", 5), ("c", 11))}
    windows = {name: clip_windows(runtime, clip, FRAMES) for name, clip in clips.items()}
    rings = {}
    for name, w in windows.items():
        ring = FeatureRing(100, runtime.spec.window_frames, runtime.spec.dim)
        for k in range(FRAMES):
            ring.push(k / runtime.fps, w[k])
        rings[name] = ring
    app = App()
    app.insert_resource(MasterClock("stepped"))
    app.insert_resource(AudioVoices(features=rings))
    app.add_plugin(motion_plugin)
    avatars = {
        "a": app.world.spawn(MotionController(trained_avatar, "one_shot", seed=1), Voice("a")),
        "b": app.world.spawn(MotionController(trained_avatar, "zero_shot", seed=2, voice="b")),
        "c": app.world.spawn(MotionController(trained_avatar, "one_shot", seed=3), Voice("c")),
    }
    seen = {name: [] for name in avatars}
    for _ in range(FRAMES):
        app.update()
        for name, entity in avatars.items():
            state = app.world.get(entity, MotionState)
            seen[name].append((state.euler_deg.copy(), state.blendshapes.copy(), state.frame, state.stale,
                               state.breath))
    shared = app.world.resource(MotionModels).runtimes[motion_path(trained_avatar).resolve()]
    assert len(app.world.resource(MotionModels).runtimes) == 1
    assert shared.forwards == FRAMES  # one forward per fixed step carries all three avatars
    for name, (mode, seed) in {"a": ("one_shot", 1), "b": ("zero_shot", 2), "c": ("one_shot", 3)}.items():
        alone = run_frames(runtime, windows[name], runtime.new_memory(mode, seed))
        euler = np.stack([s[0] for s in seen[name]])
        shapes = np.stack([s[1] for s in seen[name]])
        assert [s[2] for s in seen[name]] == list(range(FRAMES)) and not any(s[3] for s in seen[name])
        assert np.allclose(euler, alone["euler_deg"], atol=1e-4), name
        assert np.allclose(shapes, alone["blendshapes"], atol=1e-5), name
        assert np.allclose([s[4] for s in seen[name]], alone["breath"]), name
    state = app.world.get(avatars["a"], MotionState)
    assert state.blendshape_names == runtime.names and state.trans.shape == (3,)


def test_an_avatar_without_features_gets_silence_and_is_marked_stale(trained_avatar):
    app = App()
    app.insert_resource(MasterClock("stepped"))
    app.add_plugin(motion_plugin)
    entity = app.world.spawn(MotionController(trained_avatar, "zero_shot", seed=0))
    for _ in range(3):
        app.update()
    state = app.world.get(entity, MotionState)
    assert state.stale and state.frame == -1 and np.isfinite(state.euler_deg).all()
    assert state.time_s == 2 / 25


def test_after_a_stall_the_steps_stay_on_the_clock(trained_avatar):
    """A wall-clock engine's first frame takes seconds (models load): the steps it skips are skipped, not owed, so
    the motion reads the features of the present; counting only the steps run had the lips lag the voice for good."""
    from engine.time import Time

    position = [0.0]
    app = App()
    clock = MasterClock("stepped")
    clock.slave_to(lambda: position[0], "test")
    app.insert_resource(clock)
    app.add_plugin(motion_plugin)
    entity = app.world.spawn(MotionController(trained_avatar, "zero_shot", seed=0))
    for seconds in (0.0, 2.5, 2.54, 2.58):  # a 2.5 s stall, then frames of 40 ms
        position[0] = seconds
        app.update()
    assert app.world.get(entity, MotionState).time_s == pytest.approx(app.resource(Time).elapsed, abs=0.04)


def test_with_the_audio_plugin_each_step_reads_the_window_heard_at_its_time(trained_avatar, synth_data):
    from engine.audio.playback import AudioPlayback
    from engine.audio.plugin import audio_plugin
    from engine.audio.settings import AudioSettings
    from engine.time import Time

    audio = synth_data[1]["audio"]
    app = App()
    app.insert_resource(MasterClock("stepped"))
    app.insert_resource(AudioSettings(output="virtual", voices=("left", "right")))
    app.add_plugin(audio_plugin)
    app.add_plugin(motion_plugin)
    left = app.world.spawn(MotionController(trained_avatar, seed=1), Voice("left"))
    right = app.world.spawn(MotionController(trained_avatar, seed=1), Voice("right"))
    app.startup()
    playback = app.resource(AudioPlayback)
    playback.play(audio[:16000 * 2], voice="left")
    playback.play(audio[16000 * 5:16000 * 7], voice="right")
    rings = app.resource(AudioVoices).features
    states = []
    for frame in range(30):
        app.update()
        current = [app.world.get(e, MotionState) for e in (left, right)]
        states.append([(s.stale, s.euler_deg.copy()) for s in current])  # states are updated in place: copy
        now = app.resource(Time).elapsed
        for name, state in zip(("left", "right"), current):
            found = rings[name].at(now)
            assert state.frame == (found[0] if found else -1) and state.stale == (found is None)
    assert all(not stale for pair in states[5:] for stale, _ in pair)  # after the output delay, always on time
    assert states[0][0][0]  # ... and before it, silence stood in
    # Same seed and model, different speech: the two avatars move differently.
    assert not np.allclose(states[-1][0][1], states[-1][1][1])
