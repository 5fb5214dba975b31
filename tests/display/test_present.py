"""Present stage through the headless runner: letterboxing, orientation, background modes, alpha."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.display.headless import run_headless
from engine.display.present import fit_rect
from engine.display.settings import DisplaySettings

BG = (0.2, 0.4, 0.6)
BG8 = (51, 102, 153)


@pytest.mark.parametrize(
    ("src", "dst", "mode", "expected"),
    [
        ((128, 64), (256, 256), "fit", (0, 64, 256, 128)),
        ((64, 128), (256, 256), "fit", (64, 0, 128, 256)),
        ((100, 100), (300, 200), "fit", (50, 0, 200, 200)),
        ((128, 64), (256, 256), "fill", (-128, 0, 512, 256)),
        ((128, 64), (256, 256), "stretch", (0, 0, 256, 256)),
        ((64, 32), (256, 128), "fit", (0, 0, 256, 128)),
    ],
)
def test_fit_rect(src, dst, mode, expected):
    assert fit_rect(src, dst, mode) == expected


def run_one(frame_app, settings, image, frames=2):
    runner = frame_app(settings, image)
    result = run_headless(runner.app, frames=frames)
    assert result.frames == frames and len(runner.canvases) == frames
    return runner.canvases[-1]


def test_letterbox_and_orientation(frame_app, card):
    canvas = run_one(frame_app, DisplaySettings(size=(256, 256), background_color=BG), card)
    assert canvas.shape == (256, 256, 4)
    # 128x64 scaled x2 into 256x256: rows 64..191 hold the frame, the rest are bars.
    assert tuple(canvas[10, 128]) == (*BG8, 255)
    assert tuple(canvas[250, 5]) == (*BG8, 255)
    assert tuple(canvas[66, 40]) == (255, 255, 0, 255)  # yellow band at the top: not flipped
    assert tuple(canvas[150, 40]) == (255, 0, 0, 255)
    assert tuple(canvas[150, 220]) == (0, 0, 255, 255)
    assert tuple(canvas[63, 128]) == (*BG8, 255) and tuple(canvas[64, 128]) != (*BG8, 255)


def test_same_aspect_is_pixel_exact(frame_app):
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (48, 64, 4), dtype=np.uint8)
    image[..., 3] = 255
    canvas = run_one(frame_app, DisplaySettings(size=(64, 48)), image)
    np.testing.assert_array_equal(canvas, image)


def test_alpha_composited_over_background_colour(frame_app):
    image = np.zeros((8, 8, 4), np.uint8)
    image[...] = (255, 0, 0, 128)
    canvas = run_one(frame_app, DisplaySettings(size=(8, 8), background_color=(0.0, 0.0, 1.0)), image)
    expected = np.array([255 * 128 / 255, 0, 255 * 127 / 255, 255])
    assert np.abs(canvas[4, 4].astype(float) - expected).max() <= 1.0


def test_chroma_background_fills_bars_and_transparent_pixels(frame_app):
    image = np.zeros((16, 32, 4), np.uint8)
    image[:, :16] = (200, 100, 50, 255)
    image[:, 16:] = (200, 100, 50, 0)  # fully transparent: chroma shows through
    canvas = run_one(frame_app, DisplaySettings(size=(32, 32), background="chroma"), image)
    assert tuple(canvas[2, 2]) == (0, 255, 0, 255)  # bar
    assert tuple(canvas[16, 4]) == (200, 100, 50, 255)
    assert tuple(canvas[16, 28]) == (0, 255, 0, 255)


def test_transparent_keeps_straight_alpha(frame_app):
    image = np.zeros((16, 32, 4), np.uint8)
    image[:, :16] = (200, 100, 50, 255)
    image[:, 16:] = (10, 220, 30, 128)
    canvas = run_one(frame_app, DisplaySettings(size=(32, 32), background="transparent"), image)
    assert canvas[2, 2, 3] == 0  # bars are see-through
    assert tuple(canvas[16, 4]) == (200, 100, 50, 255)
    assert tuple(canvas[16, 28]) == (10, 220, 30, 128)


def test_float_torch_frame_matches_uint8(frame_app, card):
    settings = DisplaySettings(size=(128, 64))
    from_uint8 = run_one(frame_app, settings, card)
    from_float = run_one(frame_app, settings, torch.from_numpy(card).float() / 255.0)
    assert np.abs(from_uint8.astype(int) - from_float.astype(int)).max() <= 1
    np.testing.assert_array_equal(from_uint8, card)


def test_nothing_rendered_shows_background(frame_app):
    canvas = run_one(frame_app, DisplaySettings(size=(16, 16), background_color=BG), None)
    assert (canvas == np.array([*BG8, 255], np.uint8)).all()


def test_three_channel_frame_is_opaque(frame_app):
    image = np.full((8, 8, 3), (10, 20, 30), np.uint8)
    canvas = run_one(frame_app, DisplaySettings(size=(8, 8), background="transparent"), image)
    assert tuple(canvas[3, 3]) == (10, 20, 30, 255)


def test_premultiplied_draw_for_transparent_windows():
    from engine.display.headless import create_egl_context, release_egl_context
    from engine.display.present import Presenter

    ctx = create_egl_context()
    try:
        presenter = Presenter(ctx)
        texture = presenter.upload.upload(np.full((4, 4, 4), (200, 100, 50, 128), np.uint8))
        color = ctx.texture((8, 4), 4)
        fbo = ctx.framebuffer(color_attachments=[color])
        settings = DisplaySettings(background="transparent", background_color=(1.0, 1.0, 1.0))
        presenter.draw(texture, fbo, settings, flip_y=False, keep_alpha=True, premultiply=True)
        pixels = np.frombuffer(fbo.read(components=4), np.uint8).reshape(4, 8, 4)
        assert (pixels[:, :2] == 0).all() and (pixels[:, 6:] == 0).all()  # bars: transparent black
        assert np.abs(pixels[2, 4].astype(int) - (100, 50, 25, 128)).max() <= 1
        presenter.release()
    finally:
        release_egl_context(ctx)
