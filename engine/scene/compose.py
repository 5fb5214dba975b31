"""Compositor: background, then each avatar's picture in its screen rectangle, then captions, into the FrameImage.

    EXTRACT  extract_scene_view: a frozen SceneView of what to draw (the compositor never reads live components)
    RENDER   compose_scene (after the avatar renderers): SceneView -> FrameImage [H, W, 4] uint8

Everything is drawn into the frame itself, so backgrounds and captions are in mp4 recordings, screenshots, the
virtual camera and OBS captures (the imgui overlay is not). Runs only in scenes that set a Background.
"""
from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

from engine.display.frame import FrameImage
from engine.display.settings import DisplaySettings
from engine.ecs import World
from engine.scene.components import AvatarImage, AvatarViewport, Background, Caption, Captions
from engine.time import Time


@dataclass(frozen=True)
class Layer:
    """One avatar's picture and where it goes (canvas pixels, origin top-left)."""

    x: int
    y: int
    width: int
    height: int
    rgba: Any


@dataclass(frozen=True)
class SceneView:
    """Resource: the snapshot compose_scene draws."""

    frame: int
    size: tuple[int, int]
    background: Background
    layers: tuple[Layer, ...]
    captions: tuple[Caption, ...]


def caption_visible(caption: Caption, now: float) -> bool:
    if not caption.text or (caption.until_s is not None and now >= caption.until_s):
        return False
    speech = caption.speech
    return speech is None or (speech.started and not speech.done)


def extract_scene_view(world: World) -> None:
    """Snapshot the background, the avatars' pictures with their viewports, and the visible captions."""
    time = world.resource(Time)
    layers = tuple(
        Layer(viewport.x, viewport.y, viewport.width, viewport.height, image.rgba)
        for _, viewport, image in world.query(AvatarViewport, AvatarImage) if image.rgba is not None
    )
    captions = world.get_resource(Captions)
    shown = tuple(Caption(**vars(c)) for c in (captions.slots.values() if captions else ())
                  if caption_visible(c, time.elapsed))
    background = Background(**vars(world.resource(Background)))
    world.insert_resource(SceneView(time.frame, world.resource(DisplaySettings).size, background, layers, shown))


def compose_scene(world: World) -> None:
    """Draw the SceneView into the FrameImage."""
    view = world.get_resource(SceneView)
    if view is None:
        return
    pixels = background_pixels(view.background, view.size).copy()
    for layer in view.layers:
        paste_over(pixels, layer)
    for caption in view.captions:
        draw_caption(pixels, caption)
    image = world.resource(FrameImage)
    image.rgba, image.frame = pixels, view.frame


def background_pixels(background: Background, size: tuple[int, int]) -> np.ndarray:
    """[H, W, 4] uint8, read-only (cached): a colour, the key colour, transparent, or the image covering the canvas."""
    if background.mode == "image":
        if background.image is None:
            raise ValueError("Background(mode='image') needs image=PATH; pass the picture to show")
        path = Path(background.image)
        if not path.is_file():
            raise FileNotFoundError(f"background image {path} does not exist; pass a PNG or JPEG file")
        return _image_pixels(str(path.resolve()), os.stat(path).st_mtime_ns, size)
    alpha = 0 if background.mode == "transparent" else 255
    return _flat_pixels(tuple(round(c * 255) for c in background.color), alpha, size)


@lru_cache(maxsize=8)
def _flat_pixels(rgb: tuple[int, int, int], alpha: int, size: tuple[int, int]) -> np.ndarray:
    width, height = size
    pixels = np.empty((height, width, 4), np.uint8)
    pixels[..., :3] = rgb
    pixels[..., 3] = alpha
    pixels.setflags(write=False)
    return pixels


@lru_cache(maxsize=4)
def _image_pixels(path: str, mtime_ns: int, size: tuple[int, int]) -> np.ndarray:
    # mtime_ns is part of the cache key so an edited picture is reloaded.
    with Image.open(path) as picture:
        fitted = ImageOps.fit(picture.convert("RGBA"), size, Image.Resampling.LANCZOS)
    pixels = np.asarray(fitted).copy()
    pixels.setflags(write=False)
    return pixels


def as_uint8_rgba(rgba: Any) -> np.ndarray:
    """A renderer's picture (numpy or torch, uint8 or float in [0, 1], any device) -> numpy [H, W, 4] uint8."""
    if hasattr(rgba, "detach"):
        rgba = rgba.detach().cpu().numpy()
    rgba = np.asarray(rgba)
    if rgba.ndim != 3 or rgba.shape[2] != 4:
        raise ValueError(f"an AvatarImage is [H, W, 4] RGBA, got shape {rgba.shape}")
    if rgba.dtype != np.uint8:
        rgba = (np.clip(rgba, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return rgba


def paste_over(pixels: np.ndarray, layer: Layer) -> None:
    """Alpha-blend the layer's picture over `pixels` at its viewport; a picture of another size is cropped or
    left short, never resized (renderers render at the viewport's size)."""
    src = as_uint8_rgba(layer.rgba)
    height, width = pixels.shape[:2]
    h = min(src.shape[0], layer.height, height - layer.y)
    w = min(src.shape[1], layer.width, width - layer.x)
    if h <= 0 or w <= 0:
        return
    dst = pixels[layer.y:layer.y + h, layer.x:layer.x + w]
    src = src[:h, :w].astype(np.float32)
    alpha = src[..., 3:4] / 255.0
    dst_f = dst.astype(np.float32)
    out_rgb = src[..., :3] * alpha + dst_f[..., :3] * (1.0 - alpha)
    out_alpha = src[..., 3:4] + dst_f[..., 3:4] * (1.0 - alpha)
    dst[..., :3] = np.clip(out_rgb + 0.5, 0, 255).astype(np.uint8)
    dst[..., 3:4] = np.clip(out_alpha + 0.5, 0, 255).astype(np.uint8)


@lru_cache(maxsize=8)
def caption_font(pixels: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=pixels)


def wrap_caption(text: str, font: Any, max_width: float) -> list[str]:
    """Split `text` into lines no wider than `max_width` pixels (a single over-long word keeps its own line)."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}".strip()
            if line and font.getlength(candidate) > max_width:
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(line)
    return lines


def draw_caption(pixels: np.ndarray, caption: Caption) -> None:
    """Draw the caption centred in a strip along the top or bottom edge, over a darkened box."""
    height, width = pixels.shape[:2]
    font_px = max(10, round(caption.size * height))
    font = caption_font(font_px)
    lines = wrap_caption(textwrap.dedent(caption.text).strip(), font, width * 0.92)
    line_px = round(font_px * 1.3)
    box_px = min(height, line_px * len(lines) + font_px // 2)
    margin = min(font_px // 2, height - box_px)
    top = margin if caption.anchor == "top" else height - box_px - margin
    strip = pixels[top:top + box_px]
    if caption.box_alpha > 0:
        keep = 1.0 - caption.box_alpha
        strip[..., :3] = (strip[..., :3].astype(np.float32) * keep).astype(np.uint8)
        # On a transparent background the box must become visible too.
        strip[..., 3] = np.maximum(strip[..., 3], round(caption.box_alpha * 255))
    picture = Image.fromarray(np.ascontiguousarray(strip), "RGBA")
    draw = ImageDraw.Draw(picture)
    for i, line in enumerate(lines):
        x = (width - font.getlength(line)) / 2
        draw.text((x, font_px // 4 + i * line_px), line, font=font, fill=(*caption.color, 255))
    strip[...] = np.asarray(picture)
