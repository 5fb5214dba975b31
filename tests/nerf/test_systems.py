"""The render systems in an App: avatars are snapshotted in EXTRACT and rendered in RENDER into their AvatarImage;
framing changes the picture, not its size."""
import numpy as np
import pytest

from engine.app import App
from engine.components import ActiveRenderer, Avatar, AvatarImage, FrameImage, Framing
from engine.motion.components import MotionState
from engine.nerf.plugin import nerf_plugin
from engine.nerf.settings import NerfRenderSettings, NerfRuntimeSettings
from engine.nerf.systems import AvatarViews

pytestmark = pytest.mark.usefixtures("taichi_cpu")


def make_app(avatar, scene_data):
    from engine.data.dataset import Dataset

    tracks = Dataset(scene_data).tracks
    app = App()
    app.insert_resource(NerfRuntimeSettings(device="cpu"))
    app.insert_resource(NerfRenderSettings(size=(20, 16)))
    app.add_plugin(nerf_plugin)
    state = MotionState(tracks.euler_deg[0].copy(), tracks.trans[0].copy(), tracks.blendshapes[0].copy(),
                        tuple(tracks.blendshape_names))
    entity = app.world.spawn(Avatar(avatar, "presenter"), state, Framing(zoom=0.0))
    app.startup()
    return app, entity


def test_render_system_writes_the_avatar_image_and_leaves_the_frame_to_the_compositor(trained_avatar, scene_data):
    app, entity = make_app(trained_avatar, scene_data)
    assert app.world.has_resource(ActiveRenderer)
    app.update()
    app.update()
    image = app.world.get(entity, AvatarImage)
    assert image is not None and tuple(image.rgba.shape) == (16, 20, 4)
    assert image.frame == app.world.resource(AvatarViews).frame
    assert not app.world.has_resource(FrameImage)  # one writer of the frame: the display's compositor
    first = image.rgba.clone().numpy()
    app.world.get(entity, Framing).zoom = 1.0
    app.update()
    zoomed = app.world.get(entity, AvatarImage).rgba.clone().numpy()
    assert zoomed.shape == first.shape and np.abs(zoomed - first).mean() > 0.01


def test_a_breath_reaches_the_picture_as_far_as_the_settings_say(trained_avatar, scene_data):
    from engine.nerf.avatar import load_avatar, nerf_path

    rise = load_avatar(nerf_path(trained_avatar)).spec.breathing_rise
    assert 0 < rise < 0.05  # measured on the scene's frames, or the usual breath for a clip too short to tell
    app, entity = make_app(trained_avatar, scene_data)
    app.world.get(entity, Framing).zoom = 1.0
    pictures = {}
    deep = 0.03 / rise  # a breath that lifts the shoulders by 3% of the frame
    for depth, breath in ((1.0, 0.0), (deep, 1.0), (0.0, 1.0)):
        app.insert_resource(NerfRenderSettings(size=(20, 16), breathing=depth))
        app.world.get(entity, MotionState).breath = breath
        app.update()
        assert app.world.resource(AvatarViews).views[0].breath == breath
        pictures[depth, breath] = app.world.get(entity, AvatarImage).rgba.clone().numpy()
    rest = pictures[1.0, 0.0]
    assert np.abs(pictures[deep, 1.0] - rest).max() > 0.005  # breathed in: the shoulders moved (off: below 1e-5)
    assert np.allclose(pictures[0.0, 1.0], rest, rtol=0, atol=1e-5)  # breathing turned off


def test_snapshot_is_frozen_against_later_edits(trained_avatar, scene_data):
    app, entity = make_app(trained_avatar, scene_data)
    app.update()
    view = app.world.resource(AvatarViews).views[0]
    state = app.world.get(entity, MotionState)
    state.euler_deg[:] = 40.0
    assert not np.allclose(view.euler_deg, 40.0)
    assert view.size == (20, 16) and view.window is None  # no audio plugin: no window, rendered as neutral


def test_two_avatars_of_one_model_keep_their_own_pictures(trained_avatar, scene_data):
    app, entity = make_app(trained_avatar, scene_data)
    state = app.world.get(entity, MotionState)
    other = app.world.spawn(Avatar(trained_avatar, "twin"), MotionState(state.euler_deg + 8.0, state.trans.copy(),
                            state.blendshapes.copy(), state.blendshape_names))
    app.update()
    app.update()
    a, b = app.world.get(entity, AvatarImage).rgba, app.world.get(other, AvatarImage).rgba
    assert a.data_ptr() != b.data_ptr() and float((a - b).abs().mean()) > 1e-3


def test_avatar_trained_on_other_features_is_refused(trained_avatar, scene_data):
    from engine.audio.features import FeatureMismatchError, FeatureSpec

    app, _ = make_app(trained_avatar, scene_data)
    app.insert_resource(FeatureSpec(extractor="hubert", params={}, dim=1024, window_frames=16, lookahead_frames=4))
    with pytest.raises(FeatureMismatchError, match="speech features"):
        app.update()


def test_a_head_without_audio_input_plays_with_any_features(expression_avatar, tiny_data):
    from engine.audio.features import FeatureSpec

    app, entity = make_app(expression_avatar, tiny_data)
    app.insert_resource(FeatureSpec(extractor="hubert", params={}, dim=1024, window_frames=16, lookahead_frames=4))
    app.update()
    assert app.world.get(entity, AvatarImage) is not None


def test_engine_renders_with_the_fast_settings_by_default(trained_avatar, scene_data):
    from engine.nerf.render import resolve_precision
    from engine.nerf.systems import NerfAvatars

    defaults = NerfRenderSettings()
    assert defaults.precision == "auto" and defaults.head_scale == "auto"
    app, _ = make_app(trained_avatar, scene_data)
    app.update()
    (renderer,) = app.world.resource(NerfAvatars).renderers.values()
    assert renderer.precision == resolve_precision("auto", "cpu") and renderer.head_scale == "auto"
    assert renderer.head_size(256, 256) == (128, 128) and renderer.head_size(20, 16) == (20, 16)


def test_each_avatar_keeps_a_short_trail_of_head_poses_for_its_torso():
    from engine.nerf.systems import TRAIL_S, PoseTrails

    trails, pose = PoseTrails(), np.zeros(6)
    for step in range(40):  # 1.6 s of motion steps at 25 Hz, each seen by two rendered frames
        for _ in range(2):
            times, poses = trails.update(7, step * 0.04, pose + step)
    assert np.all(np.diff(times) > 0) and poses.shape == (len(times), 6) and poses[-1, 0] == 39
    assert times[0] <= times[-1] - TRAIL_S < times[1]  # one pose at or before the horizon, none older
    times, _ = trails.update(7, 0.0, pose)  # the clock went back: the old trail is dropped
    assert list(times) == [0.0]
    trails.update(8, 0.0, pose)
    trails.keep_only({8})
    assert set(trails.trails) == {8}


def test_views_carry_the_trail_and_a_torso_turn_reaches_the_picture(trained_avatar, scene_data):
    from dataclasses import replace

    from engine.nerf.systems import NerfAvatars

    app, entity = make_app(trained_avatar, scene_data)
    app.world.get(entity, Framing).zoom = 1.0
    state = app.world.get(entity, MotionState)
    app.update()
    renderer = next(iter(app.world.resource(NerfAvatars).renderers.values()))
    still = app.world.get(entity, AvatarImage).rgba.clone().numpy()
    # a torso that turns with the head's yaw of 0.36 s ago (a made-up fit; the scene's own may be empty)
    follow = [0.0] * 25
    follow[-4] = 0.05
    renderer.spec = replace(renderer.spec, torso_follow=tuple(follow))
    for step in range(1, 12):
        state.time_s, state.euler_deg = step * 0.04, state.euler_deg + np.array([0.0, 0.0, 1.0])
        app.update()
    view = app.world.resource(AvatarViews).views[0]
    assert view.trail_times[-1] == pytest.approx(0.44) and view.trail_poses.shape == (len(view.trail_times), 6)
    app.insert_resource(NerfRenderSettings(size=(20, 16), torso_follow=0.0))
    app.update()
    unturned = app.world.get(entity, AvatarImage).rgba.clone().numpy()
    app.insert_resource(NerfRenderSettings(size=(20, 16)))
    app.update()
    turned = app.world.get(entity, AvatarImage).rgba.clone().numpy()
    assert np.abs(turned - unturned).max() > 0.005 and not np.array_equal(still, unturned)
