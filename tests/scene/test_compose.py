"""Compositor: backgrounds, avatar pictures in their screen rectangles and captions land in the frame and the mp4."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scene_helpers import constant, make_app

from engine.components import Avatar, AvatarImage, AvatarViewport, Background, FrameImage
from engine.display.compose import Layer, caption_font, draw_caption, paste_over, wrap_caption
from engine.display.settings import DisplaySettings
from engine.scene.api import Scene
from engine.scene.components import Caption, ScreenRect
from engine.scene.loader import SceneError


def frame_pixels(app) -> np.ndarray:
    app.update()
    return app.resource(FrameImage).rgba


def test_colour_chroma_and_transparent_backgrounds(app):
    scene = Scene(app)
    scene.background(color=(1.0, 0.5, 0.0))
    assert tuple(frame_pixels(app)[5, 5]) == (255, 128, 0, 255)
    scene.background(chroma=True)
    assert tuple(frame_pixels(app)[5, 5]) == (0, 255, 0, 255)
    assert app.resource(DisplaySettings).background == "chroma"  # letterbox bars get the key colour too
    scene.background(transparent=True)
    assert frame_pixels(app)[5, 5, 3] == 0 and app.resource(DisplaySettings).background == "transparent"


def test_an_image_background_covers_the_canvas(app, tmp_path):
    picture = np.zeros((60, 200, 3), np.uint8)
    picture[:, :100] = (200, 0, 0)
    picture[:, 100:] = (0, 0, 200)
    path = tmp_path / "backdrop.png"
    Image.fromarray(picture).save(path)
    Scene(app).background(image=path)
    pixels = frame_pixels(app)  # canvas 160x120: the 200x60 picture is scaled to cover, sides cropped
    assert pixels.shape == (120, 160, 4)
    assert tuple(pixels[60, 10, :3]) == (200, 0, 0) and tuple(pixels[60, 150, :3]) == (0, 0, 200)


def test_background_arguments_are_checked(app, tmp_path):
    scene = Scene(app)
    with pytest.raises(SceneError, match="only one of"):
        scene.background(color=(0, 0, 0), transparent=True)
    with pytest.raises(SceneError, match="does not exist"):
        scene.background(image=tmp_path / "missing.png")
    with pytest.raises(SceneError, match=r"3 floats in \[0, 1\]"):
        scene.background(color=(2, 0, 0))


def test_two_avatar_pictures_share_the_frame_in_their_rectangles(app):
    Scene(app).background(color=(0.0, 0.0, 0.0))
    left = np.zeros((120, 80, 4), np.uint8)
    left[...] = (255, 0, 0, 255)
    right = np.zeros((120, 80, 4), np.float32)
    right[...] = (0.0, 0.0, 1.0, 0.5)
    app.world.spawn(Avatar(Path("a"), "left"), ScreenRect(0.0, 0.0, 0.5, 1.0), AvatarImage(left))
    app.world.spawn(Avatar(Path("b"), "right"), ScreenRect(0.5, 0.0, 0.5, 1.0), AvatarImage(right))
    app.update()  # the first frame lays the viewports out
    pixels = frame_pixels(app)
    assert tuple(pixels[60, 40]) == (255, 0, 0, 255)
    assert tuple(pixels[60, 120]) == (0, 0, 128, 255)  # half-transparent blue over black


def over(canvas: np.ndarray, picture: np.ndarray) -> np.ndarray:
    """Straight-alpha "over" in float64: the reference the compositor's uint8 result must round."""
    a = picture[..., 3:4]
    rgb = picture[..., :3] * 255.0 * a + canvas[..., :3] * (1.0 - a)
    alpha = 255.0 * a + canvas[..., 3:4] * (1.0 - a)
    return np.concatenate([rgb, alpha], -1)


@pytest.mark.parametrize("kind", ["float32 tensor", "uint8 array"])
def test_pictures_blend_over_the_canvas_exactly(kind):
    rng = np.random.default_rng(0)
    canvas = rng.integers(0, 256, (40, 50, 4), dtype=np.uint8)
    picture = rng.random((30, 70, 4)).astype(np.float32)  # wider than the room left: cropped, never resized
    picture[:5, :, 3] = 0.0
    picture[5:10, :, 3] = 1.0
    if kind == "uint8 array":
        picture = np.round(picture * 255).astype(np.uint8)
        reference = over(canvas[4:34, 20:].astype(np.float64), picture[:, :30] / 255.0)
    else:
        reference = over(canvas[4:34, 20:].astype(np.float64), picture[:, :30].astype(np.float64))
        picture = torch.from_numpy(picture)
    before = canvas.copy()
    paste_over(canvas, Layer(20, 4, 40, 30, 0), picture)
    assert np.abs(canvas[4:34, 20:].astype(np.float64) - reference).max() <= 0.5 + 1e-3  # rounded, not truncated
    assert np.array_equal(canvas[:4], before[:4]) and np.array_equal(canvas[:, :20], before[:, :20])
    assert np.array_equal(canvas[4:9, 20:], before[4:9, 20:])  # fully transparent rows leave the canvas as it was


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (torch.cuda.is_available() is False)")
def test_cuda_pictures_are_composited_on_the_gpu(app):
    """The frame stays where the renderer's pictures are (CUDA-GL interop takes it from there), and it is the frame
    the CPU would have drawn."""
    Scene(app).background(color=(0.2, 0.3, 0.4))
    picture = torch.rand(120, 80, 4, generator=torch.Generator().manual_seed(0))
    entity = app.world.spawn(Avatar(Path("a"), "left"), ScreenRect(0.0, 0.0, 0.5, 1.0), AvatarImage(picture))
    app.update()  # the first frame lays the viewports out
    cpu_frame = frame_pixels(app).copy()
    app.world.get(entity, AvatarImage).rgba = picture.cuda()
    gpu_frame = frame_pixels(app)
    assert gpu_frame.is_cuda and gpu_frame.dtype == torch.uint8
    assert np.array_equal(gpu_frame.cpu().numpy(), cpu_frame)
    caption = Caption("letters drawn where the frame is", size=0.1)
    draw_caption(gpu_frame, caption)
    draw_caption(cpu_frame, caption)
    assert np.array_equal(gpu_frame.cpu().numpy(), cpu_frame)


def test_captions_wrap_and_draw_light_text_on_a_dark_box():
    pixels = np.full((120, 160, 4), 200, np.uint8)
    draw_caption(pixels, Caption("a caption long enough to need two lines", size=0.1))
    strip, above = pixels[60:], pixels[:40]
    assert (above == 200).all()  # nothing drawn outside the caption strip
    assert (strip[..., :3] < 100).mean() > 0.5  # the darkened box
    assert (strip[..., :3] > 230).all(axis=-1).sum() > 50  # the white letters
    assert len(wrap_caption("a caption long enough to need two lines", caption_font(12), 144)) == 2


@pytest.mark.slow
def test_background_and_captions_are_in_the_recorded_mp4(tmp_path):
    import imageio.v3 as iio

    from engine.display.headless import run_headless

    out = tmp_path / "take.mp4"
    app = make_app(size=(160, 120))
    app.insert_resource(DisplaySettings(size=(160, 120), out=out))
    scene = Scene(app)
    scene.background(color=(0.0, 0.0, 0.6))
    scene.script(lambda d: (yield d.say(constant(0.4, 0.2), caption="Hello kiosk")))
    run_headless(app, frames=20)
    frames = iio.imread(out, plugin="pyav")
    assert frames.shape[0] == 20
    top = frames[:, 10:40, :, :].reshape(20, -1, 3).mean(axis=1)
    assert np.allclose(top, (0, 0, 153), atol=12)  # the background colour in every frame
    bottom = frames[:, 90:, :, :]
    white = (bottom.mean(axis=-1) > 150).sum(axis=(1, 2))  # letters (h264 blurs pure white)
    # Speech is heard from frame 4 (lip-sync delay) for 0.4 s: the caption is in those frames only.
    assert white[:3].max() == 0 and white[5:12].min() > 20 and white[16:].max() == 0


def test_a_scene_without_a_background_leaves_the_frame_to_its_own_renderer(app):
    image = app.resource(FrameImage)
    image.rgba = np.full((4, 4, 4), 7, np.uint8)
    app.update()
    assert app.resource(FrameImage).rgba[0, 0, 0] == 7 and not app.world.has_resource(Background)


def test_the_frame_shows_the_picture_rendered_this_frame_even_a_new_one(app):
    """A renderer that hands over a new picture object (a new size, a new device) in RENDER: the compositor, which
    runs after it, pastes that one, not the one the avatar had when the frame's snapshot was taken."""
    from engine.ecs import Stage
    from engine.time import Time

    Scene(app).background(color=(0.0, 0.0, 0.0))
    entity = app.world.spawn(AvatarViewport(0, 0, 8, 8), AvatarImage(np.zeros((8, 8, 4), np.uint8)))

    def render(world):  # stands in for render_avatars: a fresh picture each frame, its value the frame's number
        frame = world.resource(Time).frame
        world.get(entity, AvatarImage).rgba = np.full((8, 8, 4), (frame + 1, 0, 0, 255), np.uint8)

    app.add_system(render, Stage.RENDER, before=["engine.display.compose.compose_scene"])
    for _ in range(3):
        app.update()
        frame = app.resource(FrameImage)
        assert frame.rgba[0, 0, 0] == frame.frame + 1


def test_two_trained_avatars_render_side_by_side_in_one_frame(tiny_avatar):
    """End to end with the real parts: a tiny avatar trained in seconds ('test' preset on the NeRF tests' procedural
    dataset), spawned twice, each on its own voice, driven by its motion model and drawn by the NeRF renderer."""
    from engine.motion.components import MotionState

    avatar = tiny_avatar
    app = make_app(size=(64, 32), voices=("left", "right"))
    scene = Scene(app)
    scene.background(color=(0.0, 0.0, 1.0))
    scene.avatar(avatar, name="left", voice="left", rect=(0.0, 0.0, 0.5, 1.0))
    scene.avatar(avatar, name="right", voice="right", rect=(0.5, 0.0, 0.5, 1.0), mode="zero-shot", seed=1)
    scene.script(lambda d: (yield d.say(constant(0.5, 0.1), avatar="left")))
    for _ in range(4):
        app.update()
    frame = app.resource(FrameImage).rgba
    expected = np.zeros((32, 64, 4), np.uint8)
    expected[...] = (0, 0, 255, 255)
    for entity, viewport, image in app.world.query(AvatarViewport, AvatarImage):
        assert app.world.get(entity, MotionState) is not None  # moved by its motion model
        assert tuple(image.rgba.shape) == (32, 32, 4)  # rendered at its rectangle's size
        paste_over(expected, Layer(viewport.x, viewport.y, viewport.width, viewport.height, entity), image.rgba)
    assert np.array_equal(frame, expected)
    for half in (frame[:, :32], frame[:, 32:]):
        assert (np.abs(half[..., :3].astype(int) - (0, 0, 255)).sum(-1) > 60).mean() > 0.3  # an avatar, not blue
    quiet = frame[:, 32:].copy()
    for _ in range(16):
        app.update()
    # The right avatar hears only silence, yet it is never frozen: its motion model keeps moving it (a frozen avatar
    # renders exactly the same frame: 0.0; this tiny model's idle motion gives about 1 level over 16 frames).
    assert np.abs(app.resource(FrameImage).rgba[:, 32:].astype(int) - quiet).mean() > 0.4
